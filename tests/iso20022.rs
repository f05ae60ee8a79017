//! The bank files (ISO 20022 pacs.009 and pain.001) through the real binary: every produced
//! file validates against the schemas in formats/iso20022/xsd, ids are stable across re-runs,
//! `clearhouse instructions DATE --phase N` re-emits byte for byte, and payment channels
//! route and split (exactly the maximum, one minor unit above, JPY without minor digits).
//!
//! Needs `xmllint` (Debian: libxml2-utils; `.ci/run` installs it). Without it these tests fail
//! rather than skip: an unvalidated bank file proves nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const DATE: &str = "2026-11-25";

/// Validates one bank file with `xmllint --noout --schema`, choosing the schema by file name.
fn assert_valid_xml(file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let xsd = if name.starts_with("pacs009-") {
        "pacs.009.001.09.xsd"
    } else if name.starts_with("pain001-") {
        "pain.001.001.10.xsd"
    } else {
        panic!("{name} is not a bank file");
    };
    let schema = repo().join("formats/iso20022/xsd").join(xsd);
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("xmllint must be installed (Debian: apt-get install libxml2-utils): {e}")
        });
    assert!(
        out.status.success(),
        "{name} does not validate against {xsd}:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

/// The bank files of an output directory, by name.
fn bank_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    read_dir_files(out)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".xml"))
        .collect()
}

/// Validates every bank file of `out` and returns them.
fn validated_bank_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let files = bank_files(out);
    for name in files.keys() {
        assert_valid_xml(&out.join(name));
    }
    files
}

/// The text of every `<tag>…</tag>` in `xml`, in order.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(gt) = after.find('>') else { break };
        let Some(end) = after.find(&close) else { break };
        out.push(after[gt + 1..end].to_string());
        rest = &after[end + close.len()..];
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// instructions.csv rows as (id, phase, kind, currency, amount, debit bank, channel).
fn instruction_rows(out: &Path) -> Vec<Vec<String>> {
    let rows = csv_rows(&out.join("instructions.csv"));
    assert!(rows.iter().all(|r| r.len() == 10), "{rows:?}");
    rows
}

/// Σ amounts as minor units of a currency with `digits` decimals.
fn minor(amount: &str, digits: usize) -> i64 {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    assert_eq!(frac.len(), digits, "{amount}");
    format!("{int}{frac}").parse().unwrap()
}

fn posted(day: &Path, data: &Path) -> PathBuf {
    let run = run_day(day, data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    data.join("out").join(DATE)
}

#[test]
fn day1_bank_files_validate_carry_every_instruction_and_are_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let out = posted(&sample("day1"), &tmp.path().join("a"));
    let files = validated_bank_files(&out);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [
            "pacs009-P1-B01.xml",
            "pacs009-P1-B02.xml",
            "pacs009-P1-B03.xml",
            "pacs009-P2-B01.xml"
        ]
    );
    // Each instruction is in the file of its debtor bank and phase, once, with its id as
    // EndToEndId and its amount; the file's count and control sum add up.
    let rows = instruction_rows(&out);
    for (name, bytes) in &files {
        let xml = text(bytes);
        let mine: Vec<&Vec<String>> = rows
            .iter()
            .filter(|r| name == &format!("pacs009-P{}-{}.xml", r[1], r[5]))
            .collect();
        let ids: Vec<String> = mine.iter().map(|r| r[0].clone()).collect();
        assert_eq!(elements(&xml, "EndToEndId"), ids, "{name}");
        assert_eq!(elements(&xml, "NbOfTxs"), [ids.len().to_string()]);
        let amounts: Vec<String> = mine.iter().map(|r| r[4].clone()).collect();
        assert_eq!(elements(&xml, "IntrBkSttlmAmt"), amounts, "{name}");
        let sum: i64 = amounts.iter().map(|a| minor(a, 2)).sum();
        assert_eq!(
            elements(&xml, "CtrlSum"),
            [format!("{}.{:02}", sum / 100, sum % 100)]
        );
        assert_eq!(elements(&xml, "CreDtTm"), [format!("{DATE}T18:00:00")]);
        assert!(!xml.contains("<PmtTpInf>"), "no channels declared: {name}");
    }

    // The same day in a fresh data directory: the same bytes.
    let again = posted(&sample("day1"), &tmp.path().join("b"));
    assert_eq!(bank_files(&again), files);

    // A re-run of the posted day restores them from the ledger, byte for byte.
    std::fs::remove_dir_all(&out).unwrap();
    let run = run_day(&sample("day1"), &tmp.path().join("a"), &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(bank_files(&out), files);
}

#[test]
fn day2_bank_files_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    posted(&sample("day1"), &data);
    let run = run_day(&sample("day2"), &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let files = validated_bank_files(&data.join("out/2026-11-26"));
    assert!(!files.is_empty());
}

#[test]
fn instructions_command_reemits_one_phase_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = posted(&sample("day1"), &data);
    let written = bank_files(&out);
    for phase in ["1", "2"] {
        let dir = tmp.path().join(format!("phase{phase}"));
        let run = clearhouse(&[
            "instructions",
            DATE,
            "--phase",
            phase,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}", run.text());
        let expected: BTreeMap<String, Vec<u8>> = written
            .iter()
            .filter(|(name, _)| name.contains(&format!("-P{phase}-")))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(read_dir_files(&dir), expected, "phase {phase}");
        for name in expected.keys() {
            assert!(run.stdout.contains(name.as_str()), "{}", run.stdout);
        }
    }

    // Without --out: into the day's output directory, replacing what is there.
    std::fs::remove_file(out.join("pacs009-P1-B02.xml")).unwrap();
    let run = clearhouse(&[
        "instructions",
        DATE,
        "--phase",
        "1",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(bank_files(&out), written);

    // A phase without instructions writes nothing and says so.
    let dir = tmp.path().join("phase3");
    let args = |date: &'static str, phase: &'static str| {
        vec![
            "instructions".to_string(),
            date.to_string(),
            "--phase".to_string(),
            phase.to_string(),
            "--data-dir".to_string(),
            data.to_str().unwrap().to_string(),
            "--out".to_string(),
            dir.to_str().unwrap().to_string(),
        ]
    };
    let call = |args: Vec<String>| clearhouse(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let run = call(args(DATE, "3"));
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("no instructions"), "{}", run.stdout);
    assert!(!dir.exists());

    // A date that was not posted, a phase that does not exist, a malformed date.
    let run = call(args("2026-11-24", "1"));
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stderr.contains("2026-11-24 is not posted"),
        "{}",
        run.stderr
    );
    let run = call(args(DATE, "4"));
    assert_ne!(run.code, 0, "{}", run.text());
    let run = call(args("25.11.2026", "1"));
    assert_eq!(run.code, 1, "{}", run.text());
}

/// The worked example of SPEC §3 with withdrawals: A (B01) 2000.00, B (B02) 500.00.
fn day_with_withdrawals(dir: &Path) {
    copy_dir(&sample("worked-example"), dir);
    std::fs::write(
        dir.join("withdrawals.csv"),
        "request_id,member_id,currency,amount\nW1,A,CNY,2000.00\nW2,B,CNY,500.00\n",
    )
    .unwrap();
}

#[test]
fn withdrawals_become_pain001_per_debtor_bank() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    day_with_withdrawals(&day);
    let out = posted(&day, &tmp.path().join("data"));
    let files = validated_bank_files(&out);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [
            "pacs009-P1-B02.xml",
            "pacs009-P2-B01.xml",
            "pain001-P3-B01.xml",
            "pain001-P3-B02.xml"
        ]
    );
    let b01 = text(&files["pain001-P3-B01.xml"]);
    assert_eq!(elements(&b01, "EndToEndId"), ["20261125-P3-W1"]);
    assert_eq!(elements(&b01, "InstdAmt"), ["2000.00"]);
    assert_eq!(elements(&b01, "MsgId"), ["20261125-P3-B01"]);
    assert!(b01.contains("<Nm>Member A Ltd</Nm>"), "{b01}");
    assert!(b01.contains("<Nm>Worked Example Exchange</Nm>"), "{b01}");
    assert!(b01.contains("<Id>6222000000000001</Id>"), "{b01}");
    assert!(b01.contains("<Id>CUS-B01</Id>"), "{b01}");
    let b02 = text(&files["pain001-P3-B02.xml"]);
    assert_eq!(elements(&b02, "EndToEndId"), ["20261125-P3-W2"]);

    let dir = tmp.path().join("p3");
    let run = clearhouse(&[
        "instructions",
        DATE,
        "--phase",
        "3",
        "--data-dir",
        tmp.path().join("data").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.text());
    let p3: BTreeMap<String, Vec<u8>> = files
        .into_iter()
        .filter(|(n, _)| n.starts_with("pain001-P3-"))
        .collect();
    assert_eq!(read_dir_files(&dir), p3);
}

/// Appends to platform.toml: `top` before the first table (top-level keys), `tail` after.
fn with_channels(dir: &Path, top: &str, tail: &str) {
    let path = dir.join("platform.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\n[").expect("platform.toml has tables");
    let (head, tables) = text.split_at(at + 1);
    std::fs::write(&path, format!("{head}{top}\n{tables}\n{tail}\n")).unwrap();
}

/// The worked example with its one instrument in JPY (no minor digits).
fn jpy_day(dir: &Path) {
    copy_dir(&sample("worked-example"), dir);
    let rewrite = |name: &str, from: &str, to: &str| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{name} lacks {from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    };
    rewrite(
        "instruments.csv",
        "X,Instrument X,CNY,3,1",
        "X,Instrument X,JPY,0,1",
    );
    rewrite("opening_balances.csv", "A,CNY,1000.00", "A,JPY,100000");
    rewrite("opening_balances.csv", "B,CNY,20000.00", "B,JPY,2000000");
    rewrite("members.csv", "0.0003,5.00", "0.0003,5");
    rewrite("trades.csv", "10.005,1", "1000,1");
    rewrite("trades.csv", "12.340,700", "1234,700");
}

/// The pay-in of bank B02 in phase 1: (currency, amount text).
fn pay_in(out: &Path) -> (String, String) {
    let rows = instruction_rows(out);
    let row = rows
        .iter()
        .find(|r| r[0].starts_with("20261125-P1-B02-"))
        .unwrap();
    (row[3].clone(), row[4].clone())
}

/// Runs `day` in a fresh data directory under `tmp/name` and returns its output directory.
fn run_fresh(tmp: &Path, name: &str, day: &Path) -> PathBuf {
    posted(day, &tmp.join(name))
}

#[test]
fn split_exactly_the_maximum_and_one_minor_unit_above() {
    let tmp = tempfile::tempdir().unwrap();
    for (currency, digits) in [("CNY", 2usize), ("JPY", 0)] {
        let base = tmp.path().join(format!("{currency}-base"));
        if currency == "JPY" {
            jpy_day(&base);
        } else {
            copy_dir(&sample("worked-example"), &base);
        }
        let (code, amount) = pay_in(&run_fresh(tmp.path(), &format!("{currency}-plain"), &base));
        assert_eq!(code, currency);
        let whole = minor(&amount, digits);
        let text_of = |m: i64| {
            if digits == 0 {
                m.to_string()
            } else {
                format!("{}.{:02}", m / 100, m % 100)
            }
        };

        // Exactly the maximum: one item, its id unchanged, on the cheapest channel.
        let exact = tmp.path().join(format!("{currency}-exact"));
        copy_dir(&base, &exact);
        with_channels(
            &exact,
            "channel_policy = \"split\"",
            &format!(
                "[[channels]]\nname = \"bulk\"\nmax_amount = {{ {currency} = \"{}\" }}\ncost = 1\n\
                 [[channels]]\nname = \"large-value\"\ncost = 5\n",
                text_of(whole)
            ),
        );
        let out = run_fresh(tmp.path(), &format!("{currency}-exact-run"), &exact);
        let rows = instruction_rows(&out);
        let p1: Vec<_> = rows.iter().filter(|r| r[1] == "1").collect();
        assert_eq!(p1.len(), 1, "{rows:?}");
        assert_eq!(p1[0][0], format!("20261125-P1-B02-{currency}"));
        assert_eq!(p1[0][4], amount);
        assert_eq!(p1[0][9], "bulk");
        let files = validated_bank_files(&out);
        let xml = text(&files["pacs009-P1-B02.xml"]);
        assert_eq!(elements(&xml, "Prtry"), ["bulk"]);

        // One minor unit above: the maximum, then the one unit, ids -1 and -2.
        let above = tmp.path().join(format!("{currency}-above"));
        copy_dir(&base, &above);
        with_channels(
            &above,
            "channel_policy = \"split\"",
            &format!(
                "[[channels]]\nname = \"bulk\"\nmax_amount = {{ {currency} = \"{}\" }}\ncost = 1\n\
                 [[channels]]\nname = \"large-value\"\ncost = 5\n",
                text_of(whole - 1)
            ),
        );
        let out = run_fresh(tmp.path(), &format!("{currency}-above-run"), &above);
        let rows = instruction_rows(&out);
        let parts: Vec<(String, String, String)> = rows
            .iter()
            .filter(|r| r[0].starts_with(&format!("20261125-P1-B02-{currency}")))
            .map(|r| (r[0].clone(), r[4].clone(), r[9].clone()))
            .collect();
        let id = format!("20261125-P1-B02-{currency}");
        assert_eq!(
            parts,
            [
                (format!("{id}-1"), text_of(whole - 1), "bulk".to_string()),
                (format!("{id}-2"), text_of(1), "bulk".to_string()),
            ]
        );
        // The delivery account still nets to zero (the in-book leg of B01 is split alike).
        let sum = |phase: &str| -> i64 {
            rows.iter()
                .filter(|r| r[1] == phase)
                .map(|r| minor(&r[4], digits))
                .sum()
        };
        assert_eq!(sum("1"), sum("2"));
        assert_eq!(sum("1"), whole);
        let files = validated_bank_files(&out);
        let xml = text(&files["pacs009-P1-B02.xml"]);
        assert_eq!(
            elements(&xml, "EndToEndId"),
            [format!("{id}-1"), format!("{id}-2")]
        );
        assert_eq!(elements(&xml, "CtrlSum"), std::slice::from_ref(&amount));
        assert_eq!(elements(&xml, "NbOfTxs"), ["2"]);
        if currency == "JPY" {
            assert!(
                xml.contains(&format!(
                    "<IntrBkSttlmAmt Ccy=\"JPY\">{}</IntrBkSttlmAmt>",
                    whole - 1
                )),
                "{xml}"
            );
        }

        // Ids are stable: the same day again, the same bytes.
        let again = run_fresh(tmp.path(), &format!("{currency}-above-again"), &above);
        assert_eq!(bank_files(&again), files);
        assert_eq!(
            std::fs::read(again.join("instructions.csv")).unwrap(),
            std::fs::read(out.join("instructions.csv")).unwrap()
        );
    }
}

#[test]
fn route_takes_the_cheapest_channel_that_fits_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    day_with_withdrawals(&day);
    with_channels(
        &day,
        "",
        "[[channels]]\nname = \"bulk\"\nmax_amount = \"5000.00\"\ncost = 1\n\
         [[channels]]\nname = \"large-value\"\ncost = 5\n",
    );
    let out = posted(&day, &tmp.path().join("data"));
    let channels: Vec<(String, String)> = instruction_rows(&out)
        .iter()
        .map(|r| (r[0].clone(), r[9].clone()))
        .collect();
    assert_eq!(
        channels,
        [
            ("20261125-P1-B02-CNY".into(), "large-value".into()),
            ("20261125-P2-B01-CNY".into(), "large-value".into()),
            ("20261125-P3-W1".into(), "bulk".into()),
            ("20261125-P3-W2".into(), "bulk".into()),
        ]
    );
    let files = validated_bank_files(&out);
    assert_eq!(
        elements(&text(&files["pain001-P3-B01.xml"]), "Prtry"),
        ["bulk"]
    );
    assert_eq!(
        elements(&text(&files["pacs009-P2-B01.xml"]), "Prtry"),
        ["large-value"]
    );
}

#[test]
fn split_withdrawals_and_bad_channel_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    day_with_withdrawals(&day);
    with_channels(
        &day,
        "channel_policy = \"split\"",
        "[[channels]]\nname = \"bulk\"\nmax_amount = \"900\"\n",
    );
    let out = posted(&day, &tmp.path().join("data"));
    let rows = instruction_rows(&out);
    let w1: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r[0].starts_with("20261125-P3-W1"))
        .map(|r| (r[0].clone(), r[4].clone()))
        .collect();
    assert_eq!(
        w1,
        [
            ("20261125-P3-W1-1".into(), "900.00".into()),
            ("20261125-P3-W1-2".into(), "900.00".into()),
            ("20261125-P3-W1-3".into(), "200.00".into()),
        ]
    );
    let files = validated_bank_files(&out);
    let b01 = text(&files["pain001-P3-B01.xml"]);
    assert_eq!(elements(&b01, "NbOfTxs"), ["3", "3"]);
    assert_eq!(elements(&b01, "CtrlSum"), ["2000.00", "2000.00"]);

    // A policy without channels is refused like any bad platform.toml: exit 2, nothing posted.
    let bad = tmp.path().join("bad");
    copy_dir(&sample("worked-example"), &bad);
    with_channels(&bad, "channel_policy = \"split\"", "");
    let run = run_day(&bad, &tmp.path().join("bad-data"), &[]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(
        run.text().contains("declares no [[channels]]"),
        "{}",
        run.text()
    );
    assert!(!tmp.path().join("bad-data/ledger.sqlite").exists());
}

#[test]
fn bics_from_platform_toml_name_the_banks() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    day_with_withdrawals(&day);
    let path = day.join("platform.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "custody_account = \"CUS-B01\"",
            "custody_account = \"CUS-B01\"\nbic = \"BANKCNBJXXX\"",
        )
        .replace(
            "custody_account = \"CUS-B02\"",
            "custody_account = \"CUS-B02\"\nbic = \"OTHRCNSH\"",
        );
    std::fs::write(&path, text).unwrap();
    let out = posted(&day, &tmp.path().join("data"));
    let files = validated_bank_files(&out);
    let pacs = text_of_file(&files, "pacs009-P1-B02.xml");
    // InstdAgt and Dbtr B02, Cdtr B01: no Othr/Id for a bank with a BIC.
    assert_eq!(
        elements(&pacs, "BICFI"),
        ["OTHRCNSH", "OTHRCNSH", "BANKCNBJXXX"]
    );
    // A withdrawal's bound bank that is one of the platform's banks gets its BIC too.
    let pain = text_of_file(&files, "pain001-P3-B02.xml");
    assert_eq!(elements(&pain, "BICFI"), ["OTHRCNSH", "OTHRCNSH"]);
}

fn text_of_file(files: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    text(files.get(name).unwrap_or_else(|| panic!("no {name}")))
}

#[test]
fn a_batch_posted_before_bank_files_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    posted(&sample("day1"), &data);
    let removed = ledger_execute(&data, "DELETE FROM outputs WHERE name LIKE '%.xml'");
    assert_eq!(removed, 4);
    let run = clearhouse(&[
        "instructions",
        DATE,
        "--phase",
        "1",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stderr.contains("posted before bank files were written"),
        "{}",
        run.stderr
    );
}

// The ledger's stored outputs re-emitted from PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(
    instructions_command_reemits_one_phase_byte_for_byte,
    a_batch_posted_before_bank_files_says_so,
);
