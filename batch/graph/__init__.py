"""Microsoft Graph: sign-in, the HTTPS client, and the $batch engine with pacing and retries."""
