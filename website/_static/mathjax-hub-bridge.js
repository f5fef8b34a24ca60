// The Jupyter widgets HTML manager (html-manager 1.x) typesets widget text with MathJax 2's API,
// `MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])`, whenever `window.MathJax` exists. The site loads
// MathJax 3, which has no `Hub`, so give it one that forwards to MathJax 3's `typesetPromise`. Loaded
// deferred after MathJax (on the pages that have math) and before the widgets render (on window load).
(function () {
  const mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub) {
    return;  // a page without math (no MathJax), or a MathJax that has its own Hub
  }
  const typeset = (element) => {
    const ready = (mathjax.startup && mathjax.startup.promise) || Promise.resolve();
    return ready.then(() => mathjax.typesetPromise([element]))
      .catch((error) => console.warn("MathJax could not typeset a widget:", error));
  };
  mathjax.Hub = {
    Queue: (...calls) => calls.forEach((call) => {
      if (Array.isArray(call) && call[0] === "Typeset" && call[2]) {
        typeset(call[2]);
      }
    }),
  };
})();
