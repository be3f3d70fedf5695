//! The back-test's report: the incidents that would have fired, as a table for a person at a
//! terminal, or as JSON or CSV for a script. `--format` chooses the format and `--output` only the
//! place (stdout when absent); both writers carry the same fields under the same names.

use std::io::Write;
use std::path::Path;

use chrono::SecondsFormat;

use crate::detect::Fired;

/// `--format`: how the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for reading (time, block, detector, severity, score, tx).
    Table,
    /// One JSON array of incident objects, keyed like the CSV columns.
    Json,
    /// A header line (time, block, detector, severity, series, score_name, score, observed,
    /// expected, tx_hash, summary), then one line per incident; RFC 4180 quoting.
    Csv,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        })
    }
}

/// The CSV header, in the order of the JSON objects' fields.
pub const CSV_HEADER: &str =
    "time,block,detector,severity,series,score_name,score,observed,expected,tx_hash,summary";

impl Format {
    /// The format when `--format` is not given. On stdout a table, as the command always printed;
    /// a file is usually for a script, so its extension decides (`.json`; anything else CSV), which
    /// keeps the `--output fired.json` and `--output fired.csv` of older scripts working.
    pub fn default_for(output: Option<&Path>) -> Format {
        match output {
            None => Format::Table,
            Some(p)
                if p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json")) =>
            {
                Format::Json
            }
            Some(_) => Format::Csv,
        }
    }
}

/// Refuses an `--output` that is a bare format name (`--output json`): that is almost always a
/// mistaken `--format json`, and it would otherwise create a file of that name. `./json` still
/// means the file.
pub fn check_output(path: &Path) -> Result<(), String> {
    let text = path.to_str().unwrap_or_default();
    match ["table", "json", "csv"]
        .into_iter()
        .find(|name| text.eq_ignore_ascii_case(name))
    {
        Some(name) => Err(format!(
            "--output {text}: --output takes a file path; for the format use --format {name}, for \
             a file of that name --output ./{text}"
        )),
        None => Ok(()),
    }
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Writes `fired` to `out` in `format`.
pub fn write(fired: &[Fired], format: Format, out: &mut dyn Write) -> Result<(), ReportError> {
    match format {
        Format::Table => out.write_all(table(fired).as_bytes())?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, fired)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => out.write_all(csv(fired).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// The table printed on the terminal.
pub fn table(fired: &[Fired]) -> String {
    let mut s = format!(
        "{:<20}  {:>9}  {:<24}  {:<8}  {:<22}  TX\n",
        "TIME", "BLOCK", "DETECTOR", "SEVERITY", "SCORE"
    );
    for f in fired {
        s.push_str(&format!(
            "{:<20}  {:>9}  {:<24}  {:<8}  {:<22}  {}\n",
            f.time.format("%Y-%m-%d %H:%M:%S"),
            f.block,
            f.detector,
            f.severity,
            format!("{}={:.3e}", f.score_name, f.score),
            f.tx_hash.map(|t| t.to_string()).unwrap_or_default()
        ));
    }
    s
}

/// The CSV document; times as in the JSON (RFC 3339, `Z`), so both carry the same values.
pub fn csv(fired: &[Fired]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for f in fired {
        let fields = [
            f.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            f.block.to_string(),
            csv_field(&f.detector),
            csv_field(&f.severity),
            csv_field(&f.series),
            csv_field(&f.score_name),
            f.score.to_string(),
            f.observed.to_string(),
            f.expected.to_string(),
            f.tx_hash.map(|t| t.to_string()).unwrap_or_default(),
            csv_field(&f.summary),
        ];
        s.push_str(&fields.join(","));
        s.push('\n');
    }
    s
}

/// A text field, quoted only when it has to be (a comma, quote or line break in it), its control
/// characters escaped.
fn csv_field(v: &str) -> String {
    // Summaries carry decoded event values, which anyone can emit: no terminal escape sequences.
    let v = tripwire_runtime::text::printable(v);
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn fired() -> Vec<Fired> {
        vec![Fired {
            time: Utc.timestamp_opt(1_700_000_000, 0).single().expect("time"),
            block: 42,
            detector: "big-withdrawal".into(),
            severity: "warning".into(),
            series: "treasury/Withdraw".into(),
            score_name: "robust_z".into(),
            score: 12.5,
            observed: 1e12,
            expected: 1000.0,
            tx_hash: None,
            summary: "Withdraw amount 1e12, \"far\" above 1000".into(),
        }]
    }

    #[test]
    fn the_default_is_a_table_on_stdout_and_the_extension_for_a_file() {
        assert_eq!(Format::default_for(None), Format::Table);
        assert_eq!(
            Format::default_for(Some(Path::new("a/fired.JSON"))),
            Format::Json
        );
        assert_eq!(
            Format::default_for(Some(Path::new("fired.csv"))),
            Format::Csv
        );
        assert_eq!(Format::default_for(Some(Path::new("fired"))), Format::Csv);
    }

    #[test]
    fn a_bare_format_name_as_output_is_refused_with_the_right_option() {
        let e = check_output(Path::new("json")).expect_err("refused");
        assert!(e.contains("--format json") && e.contains("./json"), "{e}");
        assert!(check_output(Path::new("./json")).is_ok());
        assert!(check_output(Path::new("fired.json")).is_ok());
    }

    #[test]
    fn csv_quotes_only_fields_that_need_it() {
        let text = csv(&fired());
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER));
        assert_eq!(
            lines.next(),
            Some(
                "2023-11-14T22:13:20Z,42,big-withdrawal,warning,treasury/Withdraw,robust_z,12.5,\
                 1000000000000,1000,,\"Withdraw amount 1e12, \"\"far\"\" above 1000\""
            )
        );
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn json_is_an_array_of_objects_with_the_csv_columns() -> Result<(), ReportError> {
        let mut out = Vec::new();
        write(&fired(), Format::Json, &mut out)?;
        let v: serde_json::Value = serde_json::from_slice(&out)?;
        let obj = v[0].as_object().expect("an object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut columns: Vec<&str> = CSV_HEADER.split(',').collect();
        columns.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, columns);
        assert_eq!(v[0]["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v[0]["tx_hash"], serde_json::Value::Null);
        Ok(())
    }
}
