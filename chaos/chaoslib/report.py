"""The run's report: markdown (scenario, seed, faults, figures, pass/fail per
invariant) and an SVG timeline (operations and errors per second, fault
windows shaded), drawn with the standard library."""

import html


def timeline_svg(ops, faults, duration, width=900, height=260):
    secs = max(1, int(duration) + 1)
    ok = [0] * secs
    err = [0] * secs
    for op in ops:
        if op.get("phase") != "run":
            continue
        b = min(secs - 1, max(0, int(op["end"])))
        st = op.get("status")
        if st is None or st >= 500:
            err[b] += 1
        else:
            ok[b] += 1
    top = max(max(ok) + max(err), 1)
    left, right, tb, bb = 50, 10, 20, 30
    pw, ph = width - left - right, height - tb - bb
    x = lambda t: left + pw * t / secs
    y = lambda v: tb + ph - ph * v / top
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
           % (width, height),
           '<rect width="100%" height="100%" fill="white"/>']
    for f in faults:
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4c7a1" opacity="0.5"><title>%s</title></rect>'
                   % (x(f["start"]), tb, max(1.0, x(f["end"]) - x(f["start"])), ph,
                      html.escape("%s %s %.1f-%.1fs" % (f["kind"], f["target"], f["start"], f["end"]))))
    def line(vals, color):
        pts = " ".join("%.1f,%.1f" % (x(i + 0.5), y(v)) for i, v in enumerate(vals))
        return '<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (color, pts)
    out.append(line(ok, "#2b6cb0"))
    out.append(line(err, "#c53030"))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (left, tb + ph, left + pw, tb + ph))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (left, tb, left, tb + ph))
    step = max(1, secs // 10)
    for t in range(0, secs + 1, step):
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%ds</text>' % (x(t), tb + ph + 15, t))
    for v in (0, top // 2, top):
        out.append('<text x="%d" y="%.1f" text-anchor="end">%d</text>' % (left - 5, y(v) + 4, v))
    out.append('<text x="%d" y="12">operations/s (blue: ok, red: 5xx or timeout); shaded: faults</text>' % left)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def markdown(run, results, faults, expected):
    lines = ["# chaos: %s" % run["scenario"], "",
             "| | |", "| --- | --- |"]
    for k in ("scenario", "what", "seed", "nodes", "topology", "redis", "duration_s", "operations",
              "convergence_s", "binary"):
        lines.append("| %s | %s |" % (k, run.get(k)))
    lines += ["", "Replay: `%s`" % run["replay"], "", "## Invariants", "",
              "| checker | count | invariant | result |", "| --- | --- | --- | --- |"]
    for r in results:
        if not r.invariant:
            verdict = "-"
        elif r.count == 0:
            verdict = "pass" if r.name not in expected else "pass (expected to fail: XPASS)"
        else:
            verdict = "FAIL" if r.name not in expected else "fail (known, XFAIL)"
        lines.append("| %s | %d | %s | %s |" % (r.name, r.count, "yes" if r.invariant else "no", verdict))
    lines += ["", "What each checker counts:", ""]
    for r in results:
        lines.append("- `%s`: %s" % (r.name, r.what))
    lines += ["", "## Faults", "", "| start | end | fault | target |", "| --- | --- | --- | --- |"]
    for f in faults:
        lines.append("| %.1f s | %.1f s | %s | %s |" % (f["start"], f["end"], f["kind"], f["target"]))
    if not faults:
        lines.append("| | | none | |")
    lines += ["", "## Examples", ""]
    for r in results:
        if r.examples:
            lines.append("%s:" % r.name)
            lines += ["- " + e for e in r.examples]
            lines.append("")
    lines += ["![timeline](timeline.svg)", ""]
    return "\n".join(lines)
