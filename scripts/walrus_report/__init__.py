"""Self-contained HTML pages of the benchmark harness's CSV results.

One module per report kind (writes, reads, scaling, compare) turns a CSV
into page sections; `charts` draws inline SVG with hover tooltips, `page`
assembles one offline HTML file, `data` finds and validates the CSVs and
the host figures measured beside them.
"""
