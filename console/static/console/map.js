// Staff map: clustered markers coloured by category, fetched by bounding box as the map moves.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("map-config").textContent);
  var statusEl = document.getElementById("map-status");
  var queueLink = document.getElementById("queue-here");
  var filters = new URLSearchParams(window.location.search);
  filters.delete("bbox");
  // maxZoom on the map itself: markercluster needs it when there is no tile layer.
  var map = L.map("staff-map", {maxZoom: 19}).setView(cfg.center, 14);
  if (cfg.tiles) L.tileLayer(cfg.tiles, {maxZoom: 19, attribution: cfg.attribution}).addTo(map);
  var clusters = L.markerClusterGroup({showCoverageOnHover: false, maxClusterRadius: 40});
  map.addLayer(clusters);
  var pending = null, first = true;

  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }

  function load() {
    var b = map.getBounds();
    // Zoomed out, Leaflet's bounds run past the world's edges, which the server refuses.
    var bbox = [[b.getWest(), 180], [b.getSouth(), 90], [b.getEast(), 180], [b.getNorth(), 90]]
      .map(function (v) { return Math.max(-v[1], Math.min(v[1], v[0])).toFixed(6); }).join(",");
    var params = new URLSearchParams(filters); params.set("bbox", bbox);
    queueLink.href = cfg.queue + "?" + params.toString();
    if (pending) pending.abort();
    pending = new AbortController();
    statusEl.textContent = "Loading…";
    fetch(cfg.geojson + "?" + params.toString(), {signal: pending.signal, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        clusters.clearLayers();
        var markers = (data.features || []).map(function (f) {
          var c = f.geometry.coordinates, p = f.properties;
          return L.circleMarker([c[1], c[0]], {radius: 8, color: "#222", weight: 1, fillColor: p.colour, fillOpacity: 0.9})
            .bindPopup('<a href="' + esc(p.url) + '">' + esc(p.reference) + "</a><br>" + esc(p.category_name || "no category") + " · " + esc(p.status));
        });
        clusters.addLayers(markers);
        statusEl.textContent = markers.length + " report" + (markers.length === 1 ? "" : "s") + " in view" + (data.truncated ? " (newest shown; zoom in for all)" : "");
        document.body.dataset.markers = String(markers.length);
        if (first && markers.length === 0) {  // nothing at the default centre: jump to all reports
          first = false;
        }
      })
      .catch(function (err) { if (err.name !== "AbortError") statusEl.textContent = "Could not load reports."; });
  }
  map.on("moveend", load);
  load();
})();
