(function () {
  var table = document.getElementById('runs');
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var status = document.getElementById('filter-status');
  var family = document.getElementById('filter-family');
  var search = document.getElementById('filter-text');
  var count = document.getElementById('run-count');
  function applyFilters() {
    var shown = 0, text = search.value.toLowerCase();
    rows.forEach(function (row) {
      var ok = (!status.value || row.dataset.status === status.value) &&
               (!family.value || row.dataset.family === family.value) &&
               (!text || row.textContent.toLowerCase().indexOf(text) >= 0);
      row.style.display = ok ? '' : 'none';
      if (ok) { shown += 1; }
    });
    count.textContent = shown + ' of ' + rows.length + ' runs';
  }
  function sortBy(th) {
    var col = Number(th.dataset.col);
    var ascending = !th.classList.contains('asc');
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove('asc', 'desc'); });
    th.classList.add(ascending ? 'asc' : 'desc');
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y), result;
      if (x === '' && y !== '') { return 1; }
      if (y === '' && x !== '') { return -1; }
      if (!isNaN(nx) && !isNaN(ny)) { result = nx - ny; } else { result = x.localeCompare(y); }
      return ascending ? result : -result;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener('click', function () { sortBy(th); });
  });
  [status, family].forEach(function (el) { el.addEventListener('change', applyFilters); });
  search.addEventListener('input', applyFilters);
  applyFilters();
})();
