// Small map on the report view: the pin, and the photo's GPS point when it differs.
(function () {
  "use strict";
  if (typeof L === "undefined") return;
  var el = document.getElementById("report-map");
  var data = JSON.parse(document.getElementById("report-map-data").textContent);
  var cfg = JSON.parse(document.getElementById("map-config").textContent);
  var pin = [data.location.lat, data.location.lon];
  var map = L.map(el, {keyboard: false, scrollWheelZoom: false}).setView(pin, 17);
  if (cfg.tiles) L.tileLayer(cfg.tiles, {maxZoom: 19, attribution: cfg.attribution}).addTo(map);
  L.circleMarker(pin, {radius: 9, color: "#005ea5", fillOpacity: 0.8}).addTo(map).bindTooltip("Report location", {permanent: !cfg.tiles});
  if (data.exif && (data.distance_m === null || data.distance_m > 1)) {
    var exif = [data.exif.lat, data.exif.lon];
    L.circleMarker(exif, {radius: 7, color: "#b10e1e", fillOpacity: 0.6}).addTo(map)
      .bindTooltip("Photo GPS" + (data.distance_m !== null ? " (" + Math.round(data.distance_m) + " m)" : ""), {permanent: !cfg.tiles});
    L.polyline([pin, exif], {color: "#b10e1e", dashArray: "4 4"}).addTo(map);
    map.fitBounds(L.latLngBounds([pin, exif]).pad(0.4), {maxZoom: 18});
  }
})();
