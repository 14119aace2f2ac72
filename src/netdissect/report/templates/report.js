// Sortable, filterable unit table; the filter also hides the cards of units it leaves out.
(function () {
  const table = document.getElementById("units");
  if (!table) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const cards = new Map(Array.from(document.querySelectorAll(".card")).map((c) => [c.dataset.unit, c]));
  table.querySelectorAll("th.sortable").forEach((th, column) => {
    th.addEventListener("click", () => {
      const numeric = th.classList.contains("num");
      const descending = th.dataset.order !== "desc";
      th.dataset.order = descending ? "desc" : "asc";
      const key = (row) => (numeric ? parseFloat(row.cells[column].dataset.value) : row.cells[column].textContent);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const order = x < y ? -1 : x > y ? 1 : 0;
        return descending ? -order : order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
  const filter = document.getElementById("filter");
  const detectorsOnly = document.getElementById("detectors-only");
  function apply() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    rows.forEach((row) => {
      const text = row.textContent.toLowerCase();
      const shown = words.every((w) => text.includes(w)) && (!detectorsOnly.checked || row.dataset.detector === "1");
      row.classList.toggle("hidden", !shown);
      const card = cards.get(row.dataset.unit);
      if (card) card.classList.toggle("hidden", !shown);
    });
    document.getElementById("shown").textContent = rows.filter((r) => !r.classList.contains("hidden")).length;
  }
  filter.addEventListener("input", apply);
  detectorsOnly.addEventListener("change", apply);
  document.querySelectorAll(".card img").forEach((img) => {
    img.addEventListener("error", () => img.closest(".card").classList.add("missing"));
  });
})();
