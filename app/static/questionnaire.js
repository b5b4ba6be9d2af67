// Follow-up questions (fieldsets with data-show-if): shown only while the answer they depend on
// matches; hidden ones are disabled so nothing of theirs is sent. Without this script every
// follow-up stays visible with its hint, and the server applies the same rule.
(function () {
  "use strict";
  function update(form) {
    var followUps = form.querySelectorAll("fieldset[data-show-if]");
    for (var i = 0; i < followUps.length; i++) {
      var box = followUps[i];
      var wanted = box.getAttribute("data-answers").split(" ");
      var inputs = form.querySelectorAll('input[name="' + box.getAttribute("data-show-if") + '"]');
      var met = false;
      for (var j = 0; j < inputs.length; j++) {
        if (inputs[j].checked && !inputs[j].disabled && wanted.indexOf(inputs[j].value) >= 0) met = true;
      }
      box.hidden = !met;
      box.disabled = !met;
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.questionnaire");
    if (!form || !form.querySelector("fieldset[data-show-if]")) return;
    form.addEventListener("change", function () { update(form); });
    update(form);
  });
})();

// WeChat's OAuth callback answers with the questionnaire itself (one round trip less): the address
// bar then shows the callback's, whose code is spent. The questionnaire's own address replaces it,
// so that a refresh, the back button and WeChat's share menu all lead to the questionnaire.
(function () {
  "use strict";
  var form = document.querySelector("form.questionnaire");
  var own = form && form.getAttribute("action");
  if (own && window.history && history.replaceState && location.pathname !== own) {
    history.replaceState(null, "", own);
  }
})();
