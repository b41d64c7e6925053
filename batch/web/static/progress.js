// Live progress of a run: poll its counters, move the bar, reload the page when it is over.
(function () {
  var bar = document.getElementById("progress");
  if (!bar) return;
  var text = document.getElementById("progress-text");
  function poll() {
    fetch(bar.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        if (p.status !== "running" && p.status !== "approved") { location.reload(); return; }
        bar.max = p.total || 1;
        bar.value = p.done;
        text.textContent = p.done + " of " + p.total + " writes done";
        setTimeout(poll, 500);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
