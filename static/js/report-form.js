// Progressive enhancement for the report form: browser geolocation, a pin that moves by drag, click or
// arrow keys, the GPS read from a chosen JPEG, and the address search as a combobox. Without this
// script the form still works: the photo's GPS, or "Find" and a radio button, give the location.
// The location line always says what will be sent and where it came from.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("map-config").textContent);
  var text = JSON.parse(document.getElementById("location-text").textContent);
  var form = document.getElementById("report-form");
  var lat = document.getElementById("id_latitude");
  var lon = document.getElementById("id_longitude");
  var source = document.getElementById("id_location_source");
  var statusEl = document.getElementById("location-status");
  var button = document.getElementById("use-location");
  var mapEl = document.getElementById("map");
  var photoInput = form.querySelector("input[name=photo]");
  var query = document.getElementById("id_place_query");
  var list = document.getElementById("place-suggestions");
  var find = document.getElementById("find-place");
  var map = null, marker = null, photoGps = null, searchLabel = "", note = "";
  var STEP = 0.00005;  // degrees of latitude per arrow key (about 5 m); Shift moves ten times as far

  var place = document.createElement("input");  // the chosen suggestion, as the radio buttons send it
  place.type = "hidden"; place.name = "place"; form.appendChild(place);

  function describe() {
    var where;
    if (lat.value && lon.value) {
      var from = text[source.value] || text.client;
      if (source.value === "search" && searchLabel) from += ": " + searchLabel;
      where = text.location + " " + lat.value + ", " + lon.value + " (" + from + ")";
    } else if (photoGps) {
      where = text.location + " " + photoGps[0].toFixed(6) + ", " + photoGps[1].toFixed(6) + " (" + text.exif + ")";
    } else {
      where = photoInput.files && photoInput.files.length ? text.photoLater : text.none;
    }
    statusEl.textContent = (note ? note + " " : "") + where;
  }

  function showMap(la, lo) {
    if (typeof L === "undefined") return;
    mapEl.hidden = false;
    if (!map) {
      map = L.map(mapEl, {keyboard: false}).setView([la, lo], 17);  // arrow keys move the pin, not the map
      if (cfg.tiles) L.tileLayer(cfg.tiles, {maxZoom: 19, attribution: cfg.attribution}).addTo(map);
      marker = L.marker([la, lo], {draggable: true, keyboard: true, title: text.mapLabel, alt: text.mapLabel}).addTo(map);
      marker.on("dragend", function () { var p = marker.getLatLng(); movedPin(p.lat, p.lng); });
      map.on("click", function (e) { movedPin(e.latlng.lat, e.latlng.lng); });
      mapEl.tabIndex = 0;
      mapEl.setAttribute("aria-label", text.mapLabel);
      mapEl.addEventListener("keydown", onMapKey);
    } else {
      marker.setLatLng([la, lo]);
      map.panTo([la, lo]);
    }
  }

  function setPoint(la, lo, src) {
    lat.value = la.toFixed(6); lon.value = lo.toFixed(6); source.value = src;
    if (src !== "search") { place.value = ""; uncheckRadios(); searchLabel = ""; }
    note = "";
    describe();
    showMap(la, lo);
  }

  function movedPin(la, lo) { setPoint(la, lo, "map_pin"); }

  function onMapKey(e) {
    var moves = {ArrowUp: [1, 0], ArrowDown: [-1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
    if (e.key === "+" || e.key === "=") { map.zoomIn(); e.preventDefault(); return; }
    if (e.key === "-") { map.zoomOut(); e.preventDefault(); return; }
    var move = moves[e.key];
    if (!move) return;
    e.preventDefault();
    var p = marker.getLatLng(), step = e.shiftKey ? STEP * 10 : STEP;
    var la = p.lat + move[0] * step;
    var lo = p.lng + move[1] * step / Math.cos(p.lat * Math.PI / 180);
    marker.setLatLng([la, lo]);
    map.panTo([la, lo], {animate: false});
    movedPin(la, lo);  // the location line is aria-live: the new position is announced
  }

  function locate() {
    if (!navigator.geolocation) { note = text.cannot; describe(); return; }
    statusEl.textContent = text.finding;
    navigator.geolocation.getCurrentPosition(function (pos) {
      setPoint(pos.coords.latitude, pos.coords.longitude, "device_gps");
    }, function () {
      note = text.refused;
      describe();  // says what will really be used: the photo's GPS if it has one, never the map's centre
      if (!map) showMap(photoGps ? photoGps[0] : cfg.center[0], photoGps ? photoGps[1] : cfg.center[1]);
    }, {enableHighAccuracy: true, timeout: 10000, maximumAge: 60000});
  }

  // GPS from a JPEG's EXIF, so the line can say "from your photo" before it is sent (the server reads it
  // again; other formats are read there only).
  function readGps(buffer) {
    var v = new DataView(buffer), off = 2;
    if (v.byteLength < 4 || v.getUint16(0) !== 0xFFD8) return null;
    while (off + 4 <= v.byteLength) {
      var code = v.getUint16(off), size = v.getUint16(off + 2);
      if (code === 0xFFE1 && v.getUint32(off + 4) === 0x45786966) return tiffGps(v, off + 10);
      if ((code & 0xFF00) !== 0xFF00 || code === 0xFFDA) return null;
      off += 2 + size;
    }
    return null;
  }

  function tiffGps(v, t) {
    var le = v.getUint16(t) === 0x4949;
    function u16(o) { return v.getUint16(t + o, le); }
    function u32(o) { return v.getUint32(t + o, le); }
    function tags(ifd) {
      var out = {}, n = u16(ifd);
      for (var i = 0; i < n; i++) { var e = ifd + 2 + i * 12; out[u16(e)] = e; }
      return out;
    }
    function rational(o) { return u32(o) / (u32(o + 4) || 1); }
    function dms(entry) { var o = u32(entry + 8); return rational(o) + rational(o + 8) / 60 + rational(o + 16) / 3600; }
    var ifd0 = tags(u32(4));
    if (!ifd0[0x8825]) return null;
    var gps = tags(u32(ifd0[0x8825] + 8));
    if (!gps[2] || !gps[4]) return null;
    var la = dms(gps[2]), lo = dms(gps[4]);
    if (gps[1] && v.getUint8(t + gps[1] + 8) === 83) la = -la;  // "S"
    if (gps[3] && v.getUint8(t + gps[3] + 8) === 87) lo = -lo;  // "W"
    return isFinite(la) && isFinite(lo) && Math.abs(la) <= 90 && Math.abs(lo) <= 180 ? [la, lo] : null;
  }

  photoInput.addEventListener("change", function () {
    photoGps = null;
    var file = photoInput.files && photoInput.files[0];
    describe();
    if (!file || !file.slice) return;
    file.slice(0, 256 * 1024).arrayBuffer().then(function (buffer) {
      try { photoGps = readGps(buffer); } catch (err) { photoGps = null; }
      describe();
      if (photoGps && !(lat.value && lon.value)) showMap(photoGps[0], photoGps[1]);
    });
  });

  // The address search as a combobox (WAI-ARIA 1.2 list autocomplete).
  var options = [], active = -1, timer = null, asked = "";

  function uncheckRadios() {
    form.querySelectorAll("input[type=radio][name=place]").forEach(function (r) { r.checked = false; });
  }

  function close() {
    list.hidden = true; query.setAttribute("aria-expanded", "false");
    query.removeAttribute("aria-activedescendant"); active = -1;
  }

  function choose(i) {
    var p = options[i];
    if (!p) return;
    query.value = p.label; searchLabel = p.label;
    uncheckRadios();
    close();
    setPoint(p.lat, p.lon, "search");
    place.value = p.id;
  }

  function highlight(i) {
    active = i;
    Array.prototype.forEach.call(list.children, function (li, n) { li.setAttribute("aria-selected", n === i ? "true" : "false"); });
    if (i >= 0) { query.setAttribute("aria-activedescendant", "place-option-" + i); list.children[i].scrollIntoView({block: "nearest"}); }
  }

  function show(places) {
    options = places; list.textContent = "";
    places.forEach(function (p, i) {
      var li = document.createElement("li");
      li.id = "place-option-" + i; li.setAttribute("role", "option"); li.setAttribute("aria-selected", "false");
      li.textContent = p.label;
      li.addEventListener("mousedown", function (e) { e.preventDefault(); });  // keep focus in the box
      li.addEventListener("click", function () { choose(i); });
      list.appendChild(li);
    });
    if (!places.length) {
      var none = document.createElement("li");
      none.textContent = text.noMatch; none.setAttribute("aria-disabled", "true"); none.className = "none";
      list.appendChild(none);
    }
    list.hidden = false; query.setAttribute("aria-expanded", "true"); active = -1;
    note = places.length ? text.matches.replace("%s", places.length) : text.noMatch;
    describe();
  }

  function suggest() {
    var q = query.value.trim();
    if (q.length < 3) { close(); return; }
    if (q === asked && !list.hidden) return;
    asked = q;
    fetch(query.dataset.suggestUrl + "?q=" + encodeURIComponent(q), {headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : {places: []}; })
      .then(function (data) { if (query.value.trim() === q) show(data.places); })
      .catch(function () { close(); });
  }

  query.setAttribute("role", "combobox");
  query.setAttribute("aria-autocomplete", "list");
  query.setAttribute("aria-expanded", "false");
  query.setAttribute("aria-controls", "place-suggestions");
  query.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(suggest, 200); });
  query.addEventListener("blur", function () { setTimeout(close, 150); });
  query.addEventListener("keydown", function (e) {
    var open = !list.hidden && options.length;
    if (e.key === "ArrowDown") { e.preventDefault(); if (!open) { asked = ""; suggest(); } else highlight((active + 1) % options.length); }
    else if (e.key === "ArrowUp") { e.preventDefault(); if (open) highlight(active <= 0 ? options.length - 1 : active - 1); }
    else if (e.key === "Enter") { e.preventDefault(); if (open && active >= 0) choose(active); else { asked = ""; suggest(); } }
    else if (e.key === "Escape") { if (!list.hidden) { e.preventDefault(); close(); } }
  });
  find.addEventListener("click", function (e) {
    e.preventDefault();  // with the script, the list appears in place and the chosen photo stays
    asked = ""; suggest(); query.focus();
  });
  form.querySelectorAll("input[type=radio][name=place]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (!radio.checked) return;
      searchLabel = radio.dataset.label; place.value = radio.value;
      setPoint(parseFloat(radio.dataset.lat), parseFloat(radio.dataset.lon), "search");
    });
  });

  button.hidden = false;
  button.addEventListener("click", locate);
  var checked = form.querySelector("input[type=radio][name=place]:checked");
  if (checked) { searchLabel = checked.dataset.label; place.value = checked.value; setPoint(parseFloat(checked.dataset.lat), parseFloat(checked.dataset.lon), "search"); }
  else if (lat.value && lon.value) setPoint(parseFloat(lat.value), parseFloat(lon.value), source.value || "client");
  else { describe(); locate(); }
})();
