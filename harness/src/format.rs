//! Text for people: rounding, durations, thousands separators, aligned
//! and Markdown tables, timestamps, rows as CSV text. Pure functions with
//! no knowledge of benchmarks, usable from every layer.

use serde::Serialize;

/// The duration a `Duration` prints as in notes ("2s", "1.5s").
pub fn secs(d: std::time::Duration) -> String {
    format!("{}s", round(d.as_secs_f64(), 2))
}

pub fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Local time as `YYYYmmdd_HHMMSS`, sortable in file listings.
pub fn timestamp() -> String {
    // SAFETY: time(NULL) has no preconditions; localtime_r writes only into
    // the zeroed tm we own and reads the time_t we pass.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A plain aligned text table, for the terminal.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&format!("{cell:>w$}"));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A Markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out += &format!("|{}\n", "---|".repeat(header.len()));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// Thousands separators for ops/s, so tables read at a glance.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `rows` as CSV text, a header line first (the field names of `T`, in
/// order).
pub fn csv_text<T: Serialize>(rows: &[T]) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.serialize(row).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(999), "999");
        assert_eq!(round(1.2345, 2), 1.23);
        assert_eq!(secs(std::time::Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn rows_become_csv_with_their_header() {
        #[derive(Serialize)]
        struct Row {
            a: u32,
            b: Option<f64>,
        }
        let text = csv_text(&[Row { a: 1, b: None }, Row { a: 2, b: Some(0.5) }]).unwrap();
        assert_eq!(text, "a,b\n1,\n2,0.5\n");
    }
}
