"""Intake: read a sheet (CSV or XLSX, every cell as text), know the SKU catalog, check every row."""
