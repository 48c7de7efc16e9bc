# ruff: noqa: E501  (template lines are as long as the markup they make)
"""The report's Jinja templates, kept in code so an installed wheel always carries them.

``HTML`` renders with autoescaping on (every value from a system is text, never markup);
``MARKDOWN`` renders in an environment whose ``finalize`` escapes every expression for
Markdown (see :func:`daemon.review.report.md_escape`). Both read the context built by
:func:`daemon.review.report.report_context`.
"""

from __future__ import annotations

HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  :root { --fg: #1d2430; --muted: #5d6778; --line: #d9dee7; --bg: #f6f7f9; --open: #b4261a;
          --won: #1b6e3a; --lost: #8a5a00; --card: #fff; }
  * { box-sizing: border-box; }
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: var(--fg); background: var(--bg); margin: 0; padding: 24px; }
  main { max-width: 1100px; margin: 0 auto; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 19px; margin: 32px 0 12px; border-bottom: 1px solid var(--line);
       padding-bottom: 4px; }
  h3 { font-size: 16px; margin: 0 0 8px; }
  .muted { color: var(--muted); }
  .summary { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
  .count { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
           padding: 10px 16px; min-width: 130px; }
  .count b { display: block; font-size: 26px; }
  .count.open b { color: var(--open); }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
          padding: 16px; margin: 0 0 16px; }
  .card.open { border-left: 4px solid var(--open); }
  .sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
  .side { border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
  .side.won { border-color: var(--won); }
  .value { white-space: pre-wrap; word-break: break-word; background: var(--bg);
           padding: 6px 8px; border-radius: 4px; margin: 6px 0; font: 14px/1.4 ui-monospace,
           SFMono-Regular, Menlo, Consolas, monospace; }
  .diff { white-space: pre-wrap; word-break: break-word; font: 14px/1.4 ui-monospace,
          SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg); padding: 8px;
          border-radius: 4px; }
  .diff del { background: #fbd7d3; text-decoration: line-through; }
  .diff ins { background: #d3f2dc; text-decoration: none; }
  table { border-collapse: collapse; width: 100%; background: var(--card); margin: 0 0 16px; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
           vertical-align: top; }
  td.v { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace; }
  .tag { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px;
         border: 1px solid var(--line); }
  .tag.open { color: var(--open); border-color: var(--open); }
  .tag.won, .tag.resolved, .tag.chosen { color: var(--won); border-color: var(--won); }
  .tag.lost { color: var(--lost); border-color: var(--lost); }
  code { font-size: 13px; word-break: break-all; }
  form.take { margin: 8px 0 0; }
  button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid #2d5bd3;
           background: #2d5bd3; color: #fff; cursor: pointer; }
  .flash { background: #e8f0fe; border: 1px solid #2d5bd3; padding: 8px 12px;
           border-radius: 6px; }
  .flash.error { background: #fdecea; border-color: var(--open); }
  .reviewer input, .note { font: inherit; padding: 3px 6px; }
  @media (max-width: 700px) { .sides { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
<p class="muted">Generated {{ generated_at | when }} from topic prefix
  <code>{{ prefix or "(unknown)" }}</code>.{% if unreadable %} {{ unreadable }} events could not
  be read (see the worker's log).{% endif %}</p>
{% if interactive %}
  {% if flash %}<p class="flash{% if flash_error %} error{% endif %}" id="flash">{{ flash }}</p>{% endif %}
  <p class="reviewer"><label>Your name (recorded with every decision):
    <input id="reviewer" value="reviewer" maxlength="80"></label>
    <a href="{{ page_url }}">Refresh</a></p>
{% endif %}

<section class="summary" id="summary">
  <div class="count open"><b id="count-open">{{ summary.open }}</b>open</div>
  <div class="count"><b>{{ summary.auto_resolved }}</b>auto-resolved</div>
  <div class="count"><b>{{ summary.resolved }}</b>resolved by a person</div>
  <div class="count"><b>{{ summary.superseded }}</b>superseded</div>
  <div class="count"><b>{{ summary.total }}</b>in all</div>
  <div class="count"><b id="oldest-open">{% if summary.oldest_open %}{{ summary.oldest_open.age_seconds | age }}{% else %}&ndash;{% endif %}</b>oldest open</div>
</section>

<h2>Open conflicts ({{ open | length }})</h2>
{% for c in open %}
<article class="card open" id="conflict-{{ loop.index }}" data-conflict-id="{{ c.conflict_id }}" data-status="{{ c.status }}">
  <h3>{{ c.entity }}.{{ c.field }} <span class="tag open">open</span></h3>
  <p class="muted">Conflict <code>{{ c.conflict_id }}</code> &middot; record
    <code>{{ c.canonical_id }}</code>{% for system, ext in c.links.items() %} &middot; {{ system }}
    {{ ext }}{% endfor %} &middot; raised {{ c.raised_at | when }} ({{ c.age_seconds | age }} ago)
    &middot; policy {{ c.policy }}. The record keeps
    <span class="value">{{ c.value | show(c.deleted) }}</span> until someone decides.</p>
  <div class="sides">
  {% for cand in c.candidates %}
    <div class="side" data-system="{{ cand.system }}">
      <b>{{ cand.system }}</b> <span class="muted">({{ cand.role }}, written {{ cand.source_ts | when }})</span>
      <div class="value">{{ cand.value | show(cand.deleted) }}</div>
      {% if interactive %}
      <form class="take" method="post" action="{{ resolve_url }}">
        <input type="hidden" name="conflict_id" value="{{ c.conflict_id }}">
        <input type="hidden" name="take" value="{{ cand.system }}">
        <input type="hidden" name="by" value="reviewer">
        <input type="hidden" name="note" value="">
        <button type="submit" class="take-button">Take this value</button>
      </form>
      {% endif %}
    </div>
  {% endfor %}
  </div>
  {% set d = diff(c.candidates[0].value, c.candidates[1].value) %}
  {% if d %}
  <p class="muted">What changed from {{ c.candidates[0].system }} to {{ c.candidates[1].system }}:</p>
  <div class="diff">{% for tag, text in d %}{% if tag == "del" %}<del>{{ text }}</del>{% elif tag == "ins" %}<ins>{{ text }}</ins>{% else %}{{ text }}{% endif %}{% endfor %}</div>
  {% endif %}
  {% if interactive %}<p><label>Note (optional): <input class="note" maxlength="500"></label></p>{% endif %}
</article>
{% else %}
<p id="no-open">No conflict is waiting for a person.</p>
{% endfor %}

<h2>Auto-resolved, by policy ({{ summary.auto_resolved }})</h2>
{% for policy, items in auto_resolved.items() %}
<h3>{{ policy }} ({{ items | length }})</h3>
<table>
  <tr><th>field</th><th>kept</th><th>lost</th><th>raised</th><th>conflict</th></tr>
  {% for c in items %}
  <tr data-conflict-id="{{ c.conflict_id }}">
    <td>{{ c.entity }}.{{ c.field }}</td>
    <td class="v">{{ c.value | show(c.deleted) }}<br><span class="tag won">{{ c.decision }}</span>{% for cand in c.candidates if cand.outcome == "won" %} {{ cand.system }}{% endfor %}</td>
    <td class="v">{% for cand in c.candidates if cand.outcome == "lost" %}{{ cand.value | show(cand.deleted) }}<br><span class="tag lost">{{ cand.system }}</span>{% else %}&ndash;{% endfor %}</td>
    <td>{{ c.raised_at | when }}</td>
    <td><code>{{ c.conflict_id }}</code></td>
  </tr>
  {% endfor %}
</table>
{% else %}
<p>None.</p>
{% endfor %}

<h2>Resolved by a person ({{ summary.resolved }})</h2>
{% if resolved %}
<table>
  <tr><th>field</th><th>chosen</th><th>by</th><th>when</th><th>note</th><th>conflict</th></tr>
  {% for c in resolved %}
  <tr data-conflict-id="{{ c.conflict_id }}" data-status="resolved">
    <td>{{ c.entity }}.{{ c.field }}</td>
    <td class="v">{{ c.value | show(c.deleted) }} <span class="tag resolved">resolved</span></td>
    <td>{{ c.resolution.by }}</td>
    <td>{{ c.resolution.at | when }}</td>
    <td>{{ c.resolution.note or "" }}</td>
    <td><code>{{ c.conflict_id }}</code></td>
  </tr>
  {% endfor %}
</table>
{% else %}<p>None.</p>{% endif %}

<h2>Superseded ({{ summary.superseded }})</h2>
{% if superseded %}
<table>
  <tr><th>field</th><th>sides</th><th>replaced by</th><th>conflict</th></tr>
  {% for c in superseded %}
  <tr data-conflict-id="{{ c.conflict_id }}">
    <td>{{ c.entity }}.{{ c.field }}</td>
    <td class="v">{% for cand in c.candidates %}{{ cand.system }}: {{ cand.value | show(cand.deleted) }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
    <td><code>{{ c.superseded_by }}</code></td>
    <td><code>{{ c.conflict_id }}</code></td>
  </tr>
  {% endfor %}
</table>
{% else %}<p>None.</p>{% endif %}
</main>
{% if interactive %}
<script>
(function () {
  var reviewer = document.getElementById("reviewer");
  try { reviewer.value = localStorage.getItem("syncline-reviewer") || reviewer.value; } catch (e) {}
  document.querySelectorAll("form.take").forEach(function (form) {
    form.addEventListener("submit", function () {
      var name = reviewer.value.trim() || "reviewer";
      try { localStorage.setItem("syncline-reviewer", name); } catch (e) {}
      form.elements["by"].value = name;
      var note = form.closest("article").querySelector("input.note");
      form.elements["note"].value = note ? note.value : "";
    });
  });
})();
</script>
{% endif %}
</body>
</html>
"""

MARKDOWN = r"""# {{ title }}

Generated {{ generated_at | when }}. **{{ summary.open }} open**, {{ summary.auto_resolved }} auto-resolved, {{ summary.resolved }} resolved by a person, {{ summary.superseded }} superseded ({{ summary.total }} in all).
{%- if summary.oldest_open %} The oldest open conflict is {{ summary.oldest_open.age_seconds | age }} old.{% endif %}
{%- if unreadable %} {{ unreadable }} events could not be read.{% endif %}

## Open conflicts ({{ open | length }})
{% for c in open %}
### {{ c.entity }}.{{ c.field }} on record {{ c.canonical_id }}

- conflict: {{ c.conflict_id }}
- raised: {{ c.raised_at | when }} ({{ c.age_seconds | age }} ago), policy {{ c.policy }}
- the record keeps: {{ c.value | show(c.deleted) }}

| system | value | written |
| --- | --- | --- |
{% for cand in c.candidates -%}
| {{ cand.system }} ({{ cand.role }}) | {{ cand.value | show(cand.deleted) }} | {{ cand.source_ts | when }} |
{% endfor %}
{%- set d = diff(c.candidates[0].value, c.candidates[1].value) %}
{%- if d %}
{{ fenced_diff(d) }}
{% endif %}
{% else %}
No conflict is waiting for a person.
{% endfor %}
## Auto-resolved, by policy ({{ summary.auto_resolved }})
{% for policy, items in auto_resolved.items() %}
### {{ policy }} ({{ items | length }})

| field | kept | lost | raised | conflict |
| --- | --- | --- | --- | --- |
{% for c in items -%}
| {{ c.entity }}.{{ c.field }} | {{ c.value | show(c.deleted) }} | {% for cand in c.candidates if cand.outcome == "lost" %}{{ cand.system }}: {{ cand.value | show(cand.deleted) }}{% else %}-{% endfor %} | {{ c.raised_at | when }} | {{ c.conflict_id }} |
{% endfor %}
{% else %}
None.
{% endfor %}
## Resolved by a person ({{ summary.resolved }})
{% if resolved %}
| field | chosen | by | when | note | conflict |
| --- | --- | --- | --- | --- | --- |
{% for c in resolved -%}
| {{ c.entity }}.{{ c.field }} | {{ c.value | show(c.deleted) }} | {{ c.resolution.by }} | {{ c.resolution.at | when }} | {{ c.resolution.note or "" }} | {{ c.conflict_id }} |
{% endfor %}
{% else %}
None.
{% endif %}
"""
