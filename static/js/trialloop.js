// Behaviour every staff page shares. The Content-Security-Policy forbids inline handlers (onclick="…"), so a
// button that must be confirmed carries its question in data-confirm and this asks it before the click counts.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target instanceof Element ? event.target.closest("[data-confirm]") : null;
    if (button && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
