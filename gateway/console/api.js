// The gateway's API reference, rendered from its own OpenAPI document (/docs.json).
"use strict";

const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

document.addEventListener("DOMContentLoaded", async () => {
  const doc = await (await fetch("/docs.json")).json();
  document.title = `${doc.info.title} ${doc.info.version}`;
  $("title").textContent = `${doc.info.title} ${doc.info.version}`;
  $("description").textContent = doc.info.description || "";
  const schemes = Object.keys((doc.components || {}).securitySchemes || {});
  $("auth").textContent = schemes.length ? "Authentication: Authorization: Bearer <API key> on every /v1 call." : "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method.toUpperCase(), path, op]);
    }
  }
  const box = $("operations");
  for (const tag of (doc.tags || []).map((t) => t.name).concat([...byTag.keys()])) {
    if (!byTag.has(tag)) continue;
    box.appendChild(element("h2", tag, "tag"));
    for (const [method, path, op] of byTag.get(tag)) {
      const div = element("div", undefined, "op");
      div.appendChild(element("code", `${method} ${path}`));
      div.appendChild(element("span", ` — ${op.summary || ""}`));
      if (op.description) div.appendChild(element("p", op.description));
      const codes = Object.keys(op.responses || {}).join(", ");
      div.appendChild(element("p", `Responses: ${codes}`, "hint"));
      box.appendChild(div);
    }
    byTag.delete(tag);
  }
});
