// Alt text for the images the stored panels draw. The widget manager renders a panel's stored output
// after the page loads, with <img> elements that carry no alt; give each the panel's section title.
(function () {
  function label(img) {
    const section = img.closest("section");
    const heading = section && section.querySelector("h1, h2, h3");
    const title = heading ? heading.textContent.replace(/[#¶]\s*$/, "").trim() : document.title;
    return "Figure in a stored panel snapshot, section " + title;
  }
  function fill(root) {
    root.querySelectorAll(".cell_output img:not([alt])").forEach((img) => { img.alt = label(img); });
  }
  new MutationObserver((changes) => changes.forEach((change) => change.addedNodes.forEach((node) => {
    if (node.nodeType === Node.ELEMENT_NODE) fill(node.parentElement || node);
  }))).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", () => fill(document));
})();
