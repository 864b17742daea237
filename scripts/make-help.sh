#!/usr/bin/env bash
# `make help`: every target of the Makefile(s) given, grouped, each with the
# description its rule line carries after `##`:
#
#     compare: bench-build ## the main job: every store, same workloads, ...
#
# A target whose rule has no `##` is listed too, marked "(no description)",
# so a new target shows up here the moment it exists. The group comes from
# the target's name (the patterns below); anything that matches none is
# "Development".
set -euo pipefail

[ "$#" -gt 0 ] || set -- Makefile

awk '
function group_of(t) {
    if (t ~ /^(help|check|test|compare)$/) return 1
    if (t ~ /^bench-and-show-/ || t ~ /^show-/ || t ~ /^(report-deps|test-report|docs-screenshot)$/) return 3
    if (t ~ /^(bench-|profile)/ || t == "scenarios") return 2
    if (t ~ /soak/ || t ~ /^fuzz/) return 4
    return 5
}
# Rule lines: `name [name...]: prerequisites [## description]`, not
# variable assignments (`:=`, `?=`, `::=`), recipes, or file targets built
# from variables (`$(REPORT_DEPS):`) and special targets (`.PHONY:`).
/^[A-Za-z0-9][A-Za-z0-9_.-]*( +[A-Za-z0-9][A-Za-z0-9_.-]*)*[ ]*:([^=]|$)/ {
    line = $0
    desc = ""
    if (index(line, "## ") > 0) {
        desc = substr(line, index(line, "## ") + 3)
    }
    split(substr(line, 1, index(line, ":") - 1), names, " ")
    for (i in names) {
        t = names[i]
        if (t == "" || t ~ /%/) continue
        if (!(t in seen)) {
            seen[t] = 1
            order[++n] = t
        }
        if (desc != "" && !(t in description)) description[t] = desc
    }
}
END {
    title[1] = "Main"
    title[2] = "Benchmarks (the guide'"'"'s targets)"
    title[3] = "Graphs and reports"
    title[4] = "Long runs (soak, crash-soak, fuzz, ...)"
    title[5] = "Development"
    width = 0
    for (i = 1; i <= n; i++) if (length(order[i]) > width) width = length(order[i])
    first = 1
    for (g = 1; g <= 5; g++) {
        header = 0
        for (i = 1; i <= n; i++) {
            t = order[i]
            if (group_of(t) != g) continue
            if (!header) {
                if (!first) printf "\n"
                printf "%s:\n", title[g]
                header = 1
                first = 0
            }
            d = (t in description) ? description[t] : "(no description)"
            printf "  %-" width "s  %s\n", t, d
        }
    }
}
' "$@"
