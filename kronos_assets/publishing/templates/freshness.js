function age(ms) {
  var m = Math.round(ms / 60000);
  return m < 120 ? m + " min ago" : (m < 2880 ? Math.round(m / 60) + " h ago" : Math.round(m / 1440) + " days ago");
}
(function () {
  var now = Date.now();
  var updated = new Date(document.body.dataset.updated).getTime();
  document.getElementById("age").textContent = age(now - updated);
  var fresh = true;
  // market.rules' freshness: a forecast is due every bar; stale past a few bars plus the schedule's slack
  var staleBars = Number(document.body.dataset.staleBars), slackMs = 1000 * Number(document.body.dataset.slackSeconds);
  document.querySelectorAll("section.series").forEach(function (s) {
    var since = now - new Date(s.dataset.origin).getTime();
    var late = since - (staleBars * 1000 * Number(s.dataset.barSeconds) + slackMs);
    var el = s.querySelector(".fresh");
    el.textContent = late > 0 ? "stale: newest forecast " + age(since) : "up to date";
    el.className = "fresh " + (late > 0 ? "stale" : "ok");
    if (late > 0) fresh = false;
  });
  var b = document.getElementById("freshness");
  b.textContent = fresh ? "up to date" : "some series are stale";
  b.className = "badge " + (fresh ? "ok" : "stale");
})();
