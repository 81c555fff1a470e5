/* piwheels package search: filters /packages.json (package names ordered by
   downloads) as the user types and offers links to the project pages. */
(function () {
  'use strict';
  var MAX_RESULTS = 15;
  var form = document.getElementById('search');
  if (!form) { return; }
  var input = form.querySelector('input');
  var list = form.querySelector('ul');
  var packages = null;
  var loading = false;
  var selected = -1;

  function canonical(name) {
    return name.toLowerCase().replace(/[-_.]+/g, '-');
  }

  function load() {
    if (packages !== null || loading) { return; }
    loading = true;
    fetch('/packages.json')
      .then(function (response) {
        if (!response.ok) { throw new Error('HTTP ' + response.status); }
        return response.json();
      })
      .then(function (data) { packages = data; update(); })
      .catch(function () { packages = []; })
      .then(function () { loading = false; });
  }

  function link(name, downloads) {
    var item = document.createElement('li');
    var anchor = document.createElement('a');
    anchor.href = '/project/' + encodeURIComponent(name) + '/';
    anchor.appendChild(document.createTextNode(name));
    if (downloads !== undefined) {
      var count = document.createElement('small');
      count.textContent = downloads.toLocaleString() + ' downloads';
      anchor.appendChild(count);
    }
    item.appendChild(anchor);
    return item;
  }

  function update() {
    var query = canonical(input.value.trim());
    list.textContent = '';
    selected = -1;
    if (!query || packages === null) { return; }
    var exact = [], starts = [], contains = [];
    for (var i = 0; i < packages.length && exact.length + starts.length < MAX_RESULTS; i++) {
      var name = packages[i][0];
      var position = name.indexOf(query);
      if (position < 0) { continue; }
      if (name === query) { exact.push(packages[i]); }
      else if (position === 0) { starts.push(packages[i]); }
      else if (contains.length < MAX_RESULTS) { contains.push(packages[i]); }
    }
    exact.concat(starts, contains).slice(0, MAX_RESULTS).forEach(function (entry) {
      list.appendChild(link(entry[0], entry[1]));
    });
  }

  function move(step) {
    var links = list.querySelectorAll('a');
    if (!links.length) { return; }
    if (selected >= 0) { links[selected].classList.remove('selected'); }
    selected = (selected + step + links.length) % links.length;
    links[selected].classList.add('selected');
  }

  input.addEventListener('focus', load);
  input.addEventListener('input', function () { load(); update(); });
  input.addEventListener('keydown', function (event) {
    if (event.key === 'ArrowDown') { move(1); event.preventDefault(); }
    else if (event.key === 'ArrowUp') { move(-1); event.preventDefault(); }
    else if (event.key === 'Escape') { list.textContent = ''; selected = -1; }
  });
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var links = list.querySelectorAll('a');
    var query = canonical(input.value.trim());
    if (selected >= 0 && links[selected]) { window.location.href = links[selected].href; }
    else if (links.length) { window.location.href = links[0].href; }
    else if (query) { window.location.href = '/project/' + encodeURIComponent(query) + '/'; }
  });

  // a search address (/?q=name) opens with its results shown
  var initial = new URLSearchParams(window.location.search).get('q');
  if (initial) { input.value = initial; input.focus(); load(); }
}());
