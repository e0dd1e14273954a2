// Progressive enhancement for the report form: browser geolocation and a
// draggable pin. Without this script the form posts and the photo's GPS is used.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("map-config").textContent);
  var lat = document.getElementById("id_latitude");
  var lon = document.getElementById("id_longitude");
  var source = document.getElementById("id_location_source");
  var statusEl = document.getElementById("location-status");
  var button = document.getElementById("use-location");
  var mapEl = document.getElementById("map");
  var map = null, marker = null;

  function setPoint(la, lo, src) {
    lat.value = la.toFixed(6); lon.value = lo.toFixed(6); source.value = src;
    statusEl.textContent = "Location: " + lat.value + ", " + lon.value +
      (src === "map_pin" ? " (from the pin)" : " (from your device)");
    if (typeof L === "undefined") return;
    mapEl.hidden = false;
    if (!map) {
      map = L.map(mapEl).setView([la, lo], 17);
      if (cfg.tiles) L.tileLayer(cfg.tiles, {maxZoom: 19, attribution: cfg.attribution}).addTo(map);
      marker = L.marker([la, lo], {draggable: true, keyboard: true, title: "Problem location"}).addTo(map);
      marker.on("dragend", function () {
        var p = marker.getLatLng(); setPoint(p.lat, p.lng, "map_pin");
      });
      map.on("click", function (e) { marker.setLatLng(e.latlng); setPoint(e.latlng.lat, e.latlng.lng, "map_pin"); });
    } else {
      marker.setLatLng([la, lo]);
    }
  }

  function locate() {
    if (!navigator.geolocation) { statusEl.textContent = "Your browser cannot share its location; the photo's GPS will be used."; return; }
    statusEl.textContent = "Finding your location…";
    navigator.geolocation.getCurrentPosition(function (pos) {
      setPoint(pos.coords.latitude, pos.coords.longitude, "device_gps");
    }, function () {
      statusEl.textContent = "Location not shared. We will use the photo's GPS, or tap the map to place a pin.";
      if (!map && typeof L !== "undefined") { setPoint(cfg.center[0], cfg.center[1], "map_pin"); lat.value = ""; lon.value = ""; source.value = ""; }
    }, {enableHighAccuracy: true, timeout: 10000, maximumAge: 60000});
  }

  button.hidden = false;
  button.addEventListener("click", locate);
  if (lat.value && lon.value) setPoint(parseFloat(lat.value), parseFloat(lon.value), source.value || "client");
  else locate();
})();
