// Renders the math Sphinx writes as \( \) and \[ \] with the KaTeX served beside this file
// (conf.py loads katex.min.js and contrib/auto-render.js): no MathJax, nothing from a CDN.
// On "load", when every script of the page has run, whatever order Sphinx gave them.
function mvlibRenderMath() {
  renderMathInElement(document.body, {
    delimiters: [
      {left: "\\[", right: "\\]", display: true},
      {left: "\\(", right: "\\)", display: false},
    ],
    throwOnError: false,
  });
}
if (document.readyState === "complete") {
  mvlibRenderMath();
} else {
  window.addEventListener("load", mvlibRenderMath);
}
