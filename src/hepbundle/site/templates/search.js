// Client-side search over window.HEPBUNDLE_INDEX (index.js): no server, works from file://.
// Results are built with textContent only: catalogue values are user content.
(function () {
  "use strict";
  var index = window.HEPBUNDLE_INDEX || [];
  var input = document.getElementById("search");
  var list = document.getElementById("results");
  var count = document.getElementById("count");

  function haystack(e) {
    return [e.name, e.summary, e.framework, e.version]
      .concat(e.tags, e.authors, e.datasets, e.signers, e.signerNames || [], e.versions, Object.keys(e.aliases))
      .join(" ").toLowerCase();
  }
  var texts = index.map(haystack);

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function show(query) {
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    list.textContent = "";
    var shown = 0;
    index.forEach(function (e, i) {
      if (!terms.every(function (t) { return texts[i].indexOf(t) !== -1; })) { return; }
      shown += 1;
      var li = el("li", "result");
      var a = el("a", "result-name", e.name + "@" + e.version);
      a.href = e.url;
      li.appendChild(a);
      if (e.yanked) { li.appendChild(el("span", "badge yanked", "yanked")); }
      Object.keys(e.aliases).sort().forEach(function (alias) {
        li.appendChild(el("span", "alias", alias + " → " + e.aliases[alias]));
      });
      li.appendChild(el("div", "summary", e.summary));
      var meta = el("div", "muted");
      meta.appendChild(document.createTextNode(
        [e.framework, e.tags.join(", "), e.authors.join(", ")].filter(Boolean).join(" · ") + " · "));
      var h = el("a", null, e.versions.length + " version" + (e.versions.length === 1 ? "" : "s"));
      h.href = e.history;
      meta.appendChild(h);
      li.appendChild(meta);
      list.appendChild(li);
    });
    count.textContent = shown + " of " + index.length + " models";
  }

  var params = new URLSearchParams(window.location.search);
  input.value = params.get("q") || "";
  input.addEventListener("input", function () { show(input.value); });
  show(input.value);
}());
