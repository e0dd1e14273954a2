// Staff map: markers coloured by category, fetched by bounding box and zoom as the map moves.
// Where the box holds more reports than the server's threshold it answers grid clusters
// (`clustered: true`): each is drawn as a circle with its count, and a click zooms to it.
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
  var grid = L.layerGroup().addTo(map);  // server clusters: apart, so markercluster does not regroup them
  var pending = null, first = true;

  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }

  function reportMarker(f) {
    var c = f.geometry.coordinates, p = f.properties;
    return L.circleMarker([c[1], c[0]], {radius: 8, color: "#222", weight: 1, fillColor: p.colour, fillOpacity: 0.9})
      .bindPopup('<a href="' + esc(p.url) + '">' + esc(p.reference) + "</a><br>" + esc(p.category_name || "no category") + " · " + esc(p.status));
  }

  // A server-side cluster, drawn like markercluster's own (its CSS), so the map reads the same.
  function gridCluster(f) {
    var c = f.geometry.coordinates, p = f.properties, b = p.bbox;
    var size = p.count < 100 ? "small" : p.count < 1000 ? "medium" : "large";
    var icon = L.divIcon({html: "<div><span>" + esc(p.count) + "</span></div>", iconSize: L.point(40, 40),
                          className: "marker-cluster marker-cluster-" + size + " server-cluster"});
    var marker = L.marker([c[1], c[0]], {icon: icon, title: p.count + " reports", keyboard: true});
    marker.on("click", function () {
      if (b[0] === b[2] && b[1] === b[3]) map.setView([c[1], c[0]], Math.min(map.getZoom() + 3, map.getMaxZoom()));
      else map.fitBounds([[b[1], b[0]], [b[3], b[2]]], {padding: [20, 20]});
    });
    return marker;
  }

  function load() {
    var b = map.getBounds();
    // Zoomed out, Leaflet's bounds run past the world's edges, which the server refuses.
    var bbox = [[b.getWest(), 180], [b.getSouth(), 90], [b.getEast(), 180], [b.getNorth(), 90]]
      .map(function (v) { return Math.max(-v[1], Math.min(v[1], v[0])).toFixed(6); }).join(",");
    var params = new URLSearchParams(filters); params.set("bbox", bbox);
    queueLink.href = cfg.queue + "?" + params.toString();
    params.set("zoom", String(Math.round(map.getZoom())));
    if (pending) pending.abort();
    pending = new AbortController();
    statusEl.textContent = "Loading…";
    fetch(cfg.geojson + "?" + params.toString(), {signal: pending.signal, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        clusters.clearLayers(); grid.clearLayers();
        var features = data.features || [];
        var markers = features.map(data.clustered ? gridCluster : reportMarker);
        if (data.clustered) markers.forEach(function (m) { grid.addLayer(m); });
        else clusters.addLayers(markers);
        var n = data.clustered ? data.count : markers.length;
        statusEl.textContent = n + " report" + (n === 1 ? "" : "s") + " in view" +
          (data.clustered ? " (grouped; click a group or zoom in to see each)" : "");
        document.body.dataset.markers = String(data.clustered ? 0 : markers.length);
        document.body.dataset.clusters = String(data.clustered ? markers.length : 0);
        if (first && markers.length === 0) {  // nothing at the default centre: jump to all reports
          first = false;
        }
      })
      .catch(function (err) { if (err.name !== "AbortError") statusEl.textContent = "Could not load reports."; });
  }
  map.on("moveend", load);
  load();
})();
