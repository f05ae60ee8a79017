//! Reconciliation with the banks through the real binary: a clean day, one day with one break
//! of each kind, a failed pay-in carried to the next cycle, a returned withdrawal, re-runs
//! that post nothing twice; and `clearhouse suspense assign` with each of its refusals.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DATE: &str = "2026-11-25";

/// One bank entry of a generated camt file.
#[derive(Clone, Copy)]
struct Ntry<'a> {
    amount: &'a str,
    /// `CRDT` or `DBIT`.
    side: &'a str,
    end_to_end_id: Option<&'a str>,
    bank_ref: &'a str,
    booked: &'a str,
    reversal: bool,
}

fn ntry<'a>(amount: &'a str, side: &'a str, e2e: Option<&'a str>, bank_ref: &'a str) -> Ntry<'a> {
    Ntry {
        amount,
        side,
        end_to_end_id: e2e,
        bank_ref,
        booked: DATE,
        reversal: false,
    }
}

fn entries_xml(entries: &[Ntry<'_>], status: &str) -> String {
    let mut xml = String::new();
    for e in entries {
        let refs = e
            .end_to_end_id
            .map(|id| format!("<Refs><EndToEndId>{id}</EndToEndId></Refs>"))
            .unwrap_or_default();
        xml.push_str(&format!(
            "<Ntry><Amt Ccy=\"CNY\">{}</Amt><CdtDbtInd>{}</CdtDbtInd><RvslInd>{}</RvslInd>\
             {status}<BookgDt><Dt>{}</Dt></BookgDt><AcctSvcrRef>{}</AcctSvcrRef>\
             <NtryDtls><TxDtls>{refs}</TxDtls></NtryDtls></Ntry>\n",
            e.amount, e.side, e.reversal, e.booked, e.bank_ref
        ));
    }
    xml
}

/// A camt.054.001.08 debit/credit notification of one account (`Sts/Cd`, `Othr/Id`).
fn camt054(account: &str, entries: &[Ntry<'_>]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\">\n\
         <BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>N-{account}</MsgId></GrpHdr>\n\
         <Ntfctn><Id>1</Id><Acct><Id><Othr><Id>{account}</Id></Othr></Id></Acct>\n{}\
         </Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n",
        entries_xml(entries, "<Sts><Cd>BOOK</Cd></Sts>")
    )
}

/// A camt.053.001.04 statement of one account (`Sts` as text), closing balance `closing`.
fn camt053(account: &str, closing: &str, entries: &[Ntry<'_>]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.04\">\n\
         <BkToCstmrStmt><GrpHdr><MsgId>S-{account}</MsgId></GrpHdr>\n\
         <Stmt><Id>1</Id><Acct><Id><Othr><Id>{account}</Id></Othr></Id></Acct>\n\
         <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">{closing}</Amt>\
         <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{DATE}</Dt></Dt></Bal>\n{}\
         </Stmt></BkToCstmrStmt></Document>\n",
        entries_xml(entries, "<Sts>BOOK</Sts>")
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn reconcile(data: &Path, date: &str, files: &[String]) -> Run {
    let mut args = vec![
        "reconcile".to_string(),
        date.to_string(),
        "--data-dir".to_string(),
        data.to_str().unwrap().to_string(),
    ];
    args.extend(files.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    clearhouse(&args)
}

/// RFC 4180 rows of a CSV file, header included.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// recon.csv as maps from column name to value.
fn recon_rows(data: &Path, date: &str) -> Vec<BTreeMap<String, String>> {
    let path = data.join("out").join(date).join("recon.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows = parse_csv(&text);
    let header = &rows[0];
    assert_eq!(
        header.join(","),
        "record,id,status,break,matched_by,currency,expected,actual,account,bank_ref,source,action,detail"
    );
    rows[1..]
        .iter()
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

fn row<'a>(
    rows: &'a [BTreeMap<String, String>],
    record: &str,
    id: &str,
) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r["record"] == record && r["id"] == id)
        .unwrap_or_else(|| panic!("no {record} row {id} in {rows:#?}"))
}

fn query(data: &Path, sql: &str) -> Vec<String> {
    ledger_query(data, sql)
        .into_iter()
        .map(|cells| cells.join("|"))
        .collect()
}

/// Everything a reconciliation may write in the ledger, for "posted nothing twice".
fn recon_state(data: &Path) -> Vec<String> {
    let mut rows = ledger_rows(data);
    for sql in [
        "SELECT value FROM meta WHERE key = 'version'",
        "SELECT instruction_id, status, resolution FROM instructions ORDER BY 1",
        "SELECT adjustment_id FROM adjustments ORDER BY 1",
    ] {
        rows.extend(query(data, sql));
    }
    rows
}

fn audit_is_clean(data: &Path) {
    let run = clearhouse(&["audit", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(run.code, 0, "audit: {}", run.text());
}

/// The worked example posted: pay-in 8630.15 CUS-B02 → DLV-001, in-book 8630.15
/// DLV-001 → CUS-B01; custody expected B01 9630.15, B02 11369.85.
fn worked_example(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    let run = run_day(&sample("worked-example"), &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    data
}

const P1: &str = "20261125-P1-B02-CNY";
const P2: &str = "20261125-P2-B01-CNY";

#[test]
fn a_clean_day_exits_0_and_a_rerun_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = worked_example(tmp.path());
    let b02 = camt054("CUS-B02", &[ntry("8630.15", "DBIT", Some(P1), "B02-1")]);
    // B01 reports both sides of the delivery account, and the in-book credit of its custody
    // account twice: in a notification and in its statement (one booking, counted once).
    let dlv = camt054(
        "DLV-001",
        &[
            ntry("8630.15", "CRDT", Some(P1), "B01-1"),
            ntry("8630.15", "DBIT", Some(P2), "B01-2"),
        ],
    );
    let cus_b01 = [ntry("8630.15", "CRDT", None, "B01-3")];
    let files = [
        write(tmp.path(), "b02.xml", &b02),
        write(tmp.path(), "dlv.xml", &dlv),
        write(tmp.path(), "b01-n.xml", &camt054("CUS-B01", &cus_b01)),
        write(
            tmp.path(),
            "b01-s.xml",
            &camt053("CUS-B01", "9630.15", &cus_b01),
        ),
        write(
            tmp.path(),
            "b02-s.xml",
            &camt053("CUS-B02", "11369.85", &[]),
        ),
    ];
    let run = reconcile(&data, DATE, &files);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("reconcile 2026-11-25: clean"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2 settled, 0 failed, 0 pending"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("5 read, 1 duplicate"), "{}", run.stdout);
    let rows = recon_rows(&data, DATE);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let p1 = row(&rows, "instruction", P1);
    assert_eq!(p1["status"], "settled");
    assert_eq!(p1["matched_by"], "end_to_end_id");
    assert_eq!(p1["bank_ref"], "B01-1;B02-1");
    assert_eq!(p1["expected"], "8630.15");
    assert_eq!(p1["break"], "");
    assert_eq!(row(&rows, "instruction", P2)["status"], "settled");
    let b01 = row(&rows, "balance", "CUS-B01");
    assert_eq!(
        (b01["status"].as_str(), b01["expected"].as_str()),
        ("ok", "9630.15")
    );
    assert_eq!(row(&rows, "balance", "CUS-B02")["status"], "ok");
    assert_eq!(
        query(
            &data,
            "SELECT instruction_id, status FROM instructions ORDER BY 1"
        ),
        [format!("{P1}|settled"), format!("{P2}|settled")]
    );

    let before = recon_state(&data);
    let csv_before = std::fs::read(data.join("out").join(DATE).join("recon.csv")).unwrap();
    let again = reconcile(&data, DATE, &files);
    assert_eq!(again.code, 0, "{}", again.text());
    assert_eq!(recon_state(&data), before, "a re-run must record nothing");
    assert_eq!(
        std::fs::read(data.join("out").join(DATE).join("recon.csv")).unwrap(),
        csv_before
    );
    // Fewer files later do not forget what was confirmed.
    let partial = reconcile(&data, DATE, &files[..1]);
    assert_eq!(partial.code, 0, "{}", partial.text());
    audit_is_clean(&data);
}

/// The funds day of tests/funds.rs: deposits (R3 to suspense), a freeze, withdrawal W1 of
/// 2000.00 paid to member A's bound account from CUS-B01.
fn funds_day(dir: &Path) {
    copy_dir(&sample("worked-example"), dir);
    std::fs::write(
        dir.join("members.csv"),
        "member_id,name,settlement_bank,bound_bank,bound_account,bound_account_name,status,fee_rate,min_fee,deposit_code\n\
         A,Member A,B01,B01,6222000000000001,Member A Ltd,active,0.0003,5.00,ACODE\n\
         B,Member B,B02,B02,6222000000000002,Member B Ltd,active,0.00025,0,BCODE\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("deposits.csv"),
        "bank_ref,bank,payer_bank,payer_account,payer_name,currency,amount,memo,channel\n\
         R1,B01,B01,6222000000000001,Member A Ltd,CNY,500.00,top-up,bank\n\
         R3,B02,B09,8888,Unknown,CNY,50.00,no code,bank\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("withdrawals.csv"),
        "request_id,member_id,currency,amount\nW1,A,CNY,2000.00\n",
    )
    .unwrap();
}

/// The instructions of a posted date, by id: (kind, amount, debit account, credit account).
fn instructions(data: &Path, date: &str) -> BTreeMap<String, (String, String, String, String)> {
    let text =
        std::fs::read_to_string(data.join("out").join(date).join("instructions.csv")).unwrap();
    let rows = parse_csv(&text);
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let (id, kind, amount, debit, credit) = (
        col("instruction_id"),
        col("kind"),
        col("amount"),
        col("debit_account"),
        col("credit_account"),
    );
    rows[1..]
        .iter()
        .map(|r| {
            (
                r[id].clone(),
                (
                    r[kind].clone(),
                    r[amount].clone(),
                    r[debit].clone(),
                    r[credit].clone(),
                ),
            )
        })
        .collect()
}

#[test]
fn one_break_of_each_kind_and_a_returned_withdrawal() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    funds_day(&day);
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let ins = instructions(&data, DATE);
    let (pay_in, pay_in_leg) = ins.iter().find(|(_, v)| v.0 == "pay_in").expect("a pay-in");
    let in_book = ins.keys().find(|id| ins[*id].0 == "in_book").unwrap();
    assert_eq!(ins["20261125-P3-W1"].1, "2000.00");
    let custody: BTreeMap<String, i64> = query(&data, "SELECT bank, balance_minor FROM custody")
        .iter()
        .map(|r| {
            let (b, v) = r.split_once('|').unwrap();
            (b.to_string(), v.parse().unwrap())
        })
        .collect();
    let a_before = query(
        &data,
        "SELECT balance_minor FROM balances WHERE account = 'A'",
    );

    // The pay-in confirmed for a wrong amount (CSV); the withdrawal returned by B01 (camt
    // reversal: a credit back on CUS-B01); an unknown credit on CUS-B01; R1 (a deposit the
    // ledger booked) listed on the statement; the in-book leg never reported; CUS-B02's
    // closing balance off by 1.00; a statement of an account that is not the platform's.
    let csv = write(
        tmp.path(),
        "bank.csv",
        &format!(
            "instruction_id,status,bank_ref,amount,currency,reason\n{pay_in},settled,B02-9,{},CNY,\n",
            "1.00"
        ),
    );
    let returned = Ntry {
        reversal: true,
        ..ntry("2000.00", "CRDT", Some("20261125-P3-W1"), "B01-RET")
    };
    let cus_b01 = camt054(
        "CUS-B01",
        &[
            returned,
            ntry("77.00", "CRDT", None, "B01-X"),
            ntry("500.00", "CRDT", None, "R1"),
        ],
    );
    let b02_closing = custody["B02"] - 100;
    let b02 = camt053(
        "CUS-B02",
        &format!("{}.{:02}", b02_closing / 100, b02_closing % 100),
        &[],
    );
    let files = [
        csv,
        write(tmp.path(), "b01.xml", &cus_b01),
        write(tmp.path(), "b02.xml", &b02),
        write(
            tmp.path(),
            "other.xml",
            &camt053("CH9300762011623852957", "1.00", &[]),
        ),
    ];
    let run = reconcile(&data, DATE, &files);
    assert_eq!(run.code, 5, "{}", run.text());
    assert!(
        run.stdout.contains("posted RET-20261125-P3-W1"),
        "{}",
        run.stdout
    );
    let rows = recon_rows(&data, DATE);
    let kinds: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["break"].as_str()).collect();
    for kind in [
        "amount_mismatch",
        "missing_entry",
        "unmatched_entry",
        "balance_mismatch",
        "unknown_account",
        "failed",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {rows:#?}");
    }
    let r = row(&rows, "instruction", pay_in);
    assert_eq!(
        (
            r["break"].as_str(),
            r["expected"].as_str(),
            r["actual"].as_str()
        ),
        ("amount_mismatch", pay_in_leg.1.as_str(), "1.00")
    );
    assert_eq!(r["status"], "pending");
    assert_eq!(row(&rows, "instruction", in_book)["break"], "missing_entry");
    let w = row(&rows, "instruction", "20261125-P3-W1");
    assert_eq!(
        (
            w["status"].as_str(),
            w["break"].as_str(),
            w["action"].as_str()
        ),
        ("failed", "failed", "returned")
    );
    let x = row(&rows, "entry", "B01-X");
    assert_eq!(
        (x["break"].as_str(), x["actual"].as_str()),
        ("unmatched_entry", "77.00")
    );
    assert!(
        rows.iter().all(|r| r["id"] != "R1"),
        "a booked deposit is no break"
    );
    let b = row(&rows, "balance", "CUS-B02");
    assert_eq!(b["break"], "balance_mismatch");
    assert!(b["detail"].contains("difference -1.00 CNY"), "{b:?}");
    assert_eq!(
        row(&rows, "balance", "CH9300762011623852957")["break"],
        "unknown_account"
    );

    // The return is posted: A gets 2000.00 back, the custody expectation rises with it, and
    // the ledger still passes its audit.
    let a_after = query(
        &data,
        "SELECT balance_minor FROM balances WHERE account = 'A'",
    );
    let (before, after): (i64, i64) = (a_before[0].parse().unwrap(), a_after[0].parse().unwrap());
    assert_eq!(after - before, 200000);
    assert_eq!(
        query(
            &data,
            "SELECT balance_minor FROM custody WHERE bank = 'B01'"
        )[0],
        (custody["B01"] + 200000).to_string()
    );
    assert_eq!(
        query(
            &data,
            "SELECT entry_id, kind, account, amount FROM entries WHERE entry_id LIKE 'RET-%' ORDER BY account"
        ),
        [
            "RET-20261125-P3-W1|withdrawal_return|A|200000",
            "RET-20261125-P3-W1|withdrawal_return|CUS-B01|-200000"
        ]
    );
    assert_eq!(
        query(
            &data,
            "SELECT kind FROM adjustments WHERE adjustment_id = 'RET-20261125-P3-W1'"
        ),
        ["withdrawal_return"]
    );
    audit_is_clean(&data);

    // The same files again: the same report, nothing posted twice.
    let before = recon_state(&data);
    let again = reconcile(&data, DATE, &files);
    assert_eq!(again.code, 5, "{}", again.text());
    assert!(!again.stdout.contains("posted RET"), "{}", again.stdout);
    assert_eq!(recon_state(&data), before);
    assert_eq!(recon_rows(&data, DATE), rows);
}

#[test]
fn a_failed_pay_in_is_carried_to_the_next_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let data = worked_example(tmp.path());
    let csv = write(
        tmp.path(),
        "bank.csv",
        &format!(
            "instruction_id,status,bank_ref,amount,currency,reason\n\
             {P1},failed,B02-7,8630.15,CNY,cut-off missed\n\
             {P2},settled,B01-7,8630.15,CNY,\n"
        ),
    );
    // The pay-in did not leave CUS-B02: its statement shows 20000.00, which is what the
    // ledger expects once the failure is known (11369.85 + 8630.15).
    let b02 = write(tmp.path(), "b02.xml", &camt053("CUS-B02", "20000.00", &[]));
    let ledger_before = ledger_rows(&data);
    let run = reconcile(&data, DATE, &[csv.clone(), b02.clone()]);
    assert_eq!(run.code, 5, "{}", run.text());
    assert!(
        run.stdout.contains(&format!("posted CARRY-{P1}")),
        "{}",
        run.stdout
    );
    let rows = recon_rows(&data, DATE);
    let p1 = row(&rows, "instruction", P1);
    assert_eq!(
        (
            p1["status"].as_str(),
            p1["break"].as_str(),
            p1["action"].as_str()
        ),
        ("failed", "failed", "carried")
    );
    assert_eq!(p1["detail"], "cut-off missed");
    assert_eq!(row(&rows, "balance", "CUS-B02")["status"], "ok");
    assert_eq!(
        query(
            &data,
            &format!(
                "SELECT account, amount FROM entries WHERE entry_id = 'CARRY-{P1}' ORDER BY 1"
            )
        ),
        ["CUS-B02|863015", "DLV-001|-863015"]
    );
    // Members keep their posted results: no balance and no custody expectation moved.
    let now = ledger_rows(&data);
    assert_eq!(&now[..now.len() - 1], &ledger_before[..now.len() - 1]);
    audit_is_clean(&data);

    // The next cycle re-sends the pay-in, in phase 1, beside its own legs.
    let next = tmp.path().join("next");
    copy_dir(&sample("worked-example"), &next);
    std::fs::remove_file(next.join("opening_balances.csv")).unwrap();
    std::fs::remove_file(next.join("opening_positions.csv")).unwrap();
    std::fs::write(
        next.join("trades.csv"),
        "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n\
         N1,2026-11-26,X,B,A,10.000,1,\n",
    )
    .unwrap();
    let run = run_day(&next, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let ins = instructions(&data, "2026-11-26");
    assert_eq!(
        ins["20261126-P1-B02-CNY-C"],
        (
            "pay_in".to_string(),
            "8630.15".to_string(),
            "CUS-B02".to_string(),
            "DLV-001".to_string()
        ),
        "{ins:#?}"
    );
    assert_eq!(
        query(
            &data,
            &format!("SELECT carried_into FROM instructions WHERE instruction_id = '{P1}'")
        ),
        ["2026-11-26"]
    );
    audit_is_clean(&data);

    // Once every leg of the next cycle is confirmed, it reconciles clean, and the carry is
    // not re-sent a third time.
    let mut lines = "instruction_id,status,bank_ref,amount,currency,reason\n".to_string();
    for (id, (_, amount, _, _)) in &ins {
        lines.push_str(&format!("{id},settled,R-{id},{amount},CNY,\n"));
    }
    let csv2 = write(tmp.path(), "bank2.csv", &lines);
    let run = reconcile(&data, "2026-11-26", &[csv2]);
    assert_eq!(run.code, 0, "{}", run.text());
    // Re-running the first reconciliation posts no second carry.
    let before = recon_state(&data);
    assert_eq!(reconcile(&data, DATE, &[csv, b02]).code, 5);
    assert_eq!(recon_state(&data), before);
}

#[test]
fn bad_bank_files_and_unposted_dates_are_refused_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = worked_example(tmp.path());
    let before = recon_state(&data);
    let bad = write(
        tmp.path(),
        "bad.xml",
        "<Document>\n<BkToCstmrDbtCdtNtfctn>\n<Ntfctn>\n</BkToCstmrDbtCdtNtfctn>\n",
    );
    let run = reconcile(&data, DATE, &[bad]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(
        run.stderr
            .contains("bad.xml:4: line 4, column 1: malformed XML"),
        "{}",
        run.stderr
    );
    let csv = write(
        tmp.path(),
        "bank.csv",
        "instruction_id,status,bank_ref,amount,currency,reason\nX,maybe,,1.00,CNY,\n",
    );
    let run = reconcile(&data, DATE, std::slice::from_ref(&csv));
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(
        run.stderr
            .contains("bank.csv:2: column status: value \"maybe\""),
        "{}",
        run.stderr
    );
    let good = write(
        tmp.path(),
        "good.csv",
        &format!(
            "instruction_id,status,bank_ref,amount,currency,reason\n{P1},settled,R,8630.15,CNY,\n"
        ),
    );
    let run = reconcile(&data, "2026-11-24", &[good]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(
        run.stdout
            .contains("business date 2026-11-24 is not posted"),
        "{}",
        run.stdout
    );
    assert_eq!(recon_state(&data), before);
    assert!(!data.join("out/2026-11-24").exists());
}

fn assign(data: &Path, bank_ref: &str, member: &str) -> Run {
    clearhouse(&[
        "suspense",
        "assign",
        bank_ref,
        member,
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

#[test]
fn suspense_assign_moves_a_deposit_to_its_owner_once() {
    let tmp = tempfile::tempdir().unwrap();
    let no_ledger = assign(&tmp.path().join("nothing"), "R3", "B");
    assert_eq!(no_ledger.code, 2, "{}", no_ledger.text());

    let day = tmp.path().join("day");
    funds_day(&day);
    let data = tmp.path().join("data");
    assert_eq!(run_day(&day, &data, &[]).code, 0);
    let balance = |account: &str| {
        query(
            &data,
            &format!("SELECT balance_minor FROM balances WHERE account = '{account}'"),
        )[0]
        .parse::<i64>()
        .unwrap()
    };
    let (suspense, b) = (balance("SUSPENSE"), balance("B"));
    assert_eq!(suspense, 5000);
    let before = recon_state(&data);
    for (bank_ref, member, code, says) in [
        ("NOPE", "B", 2, "no deposit with bank_ref NOPE"),
        ("R3", "ZED", 2, "ZED is not a member"),
        ("R3", "FEE", 2, "FEE is not a member"),
        ("R3", "SUSPENSE", 2, "SUSPENSE is not a member"),
        (
            "R1",
            "B",
            4,
            "deposit R1 is not in suspense: it was allocated to A (by bound_account)",
        ),
    ] {
        let run = assign(&data, bank_ref, member);
        assert_eq!(run.code, code, "{bank_ref} {member}: {}", run.text());
        assert!(run.stdout.contains(says), "{}", run.stdout);
        assert_eq!(recon_state(&data), before, "a refusal changes nothing");
    }

    let run = assign(&data, "R3", "B");
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("deposit R3 (50.00 CNY) assigned to B"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("the next batch's bank nets move the money"),
        "{}",
        run.stdout
    );
    assert_eq!(balance("SUSPENSE"), 0);
    assert_eq!(balance("B"), b + 5000);
    assert_eq!(
        query(&data, "SELECT business_date, kind, account, amount FROM entries WHERE entry_id = 'SUS-R3' ORDER BY account"),
        [
            format!("{DATE}|suspense_assign|B|5000"),
            format!("{DATE}|suspense_assign|SUSPENSE|-5000")
        ]
    );
    assert_eq!(
        query(
            &data,
            "SELECT account, matched_by FROM deposits WHERE bank_ref = 'R3'"
        ),
        ["B|suspense_assign"]
    );
    let audit = query(
        &data,
        "SELECT kind, detail FROM adjustments WHERE adjustment_id = 'SUS-R3'",
    );
    assert!(
        audit[0].starts_with("suspense_assign|deposit R3 of 50.00 CNY"),
        "{audit:?}"
    );

    let after = recon_state(&data);
    let again = assign(&data, "R3", "B");
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(
        again.stdout.contains("already assigned to B"),
        "{}",
        again.stdout
    );
    let other = assign(&data, "R3", "A");
    assert_eq!(other.code, 4, "{}", other.text());
    assert!(
        other
            .stdout
            .contains("it was allocated to B (by suspense_assign)"),
        "{}",
        other.stdout
    );
    assert_eq!(recon_state(&data), after);

    // B is held at B02, the suspense account at B01: the next batch moves the 50.00, and the
    // custody invariant holds per bank again.
    let next = tmp.path().join("next");
    copy_dir(&day, &next);
    for f in [
        "opening_balances.csv",
        "opening_positions.csv",
        "deposits.csv",
        "withdrawals.csv",
    ] {
        std::fs::remove_file(next.join(f)).unwrap();
    }
    std::fs::write(
        next.join("trades.csv"),
        "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n\
         N1,2026-11-26,X,B,A,10.000,1,\n",
    )
    .unwrap();
    let run = run_day(&next, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let nets = std::fs::read_to_string(data.join("out/2026-11-26/bank_positions.csv")).unwrap();
    // B bought 1 X for 10.00 and paid no fee; A sold and paid the 5.00 minimum fee: without
    // the assignment B02 would pay in 10.00; with it, 50.00 comes back from B01.
    assert!(nets.contains("B02,CNY,40.00"), "{nets}");
    audit_is_clean(&data);
}

#[test]
fn a_failed_part_of_a_split_withdrawal_returns_only_that_part() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    funds_day(&day);
    let platform = std::fs::read_to_string(day.join("platform.toml")).unwrap();
    let platform = platform.replacen(
        "[banks.B01]",
        "channel_policy = \"split\"\n\n[[channels]]\nname = \"bulk\"\nmax_amount = \"1500.00\"\n\n[banks.B01]",
        1,
    );
    // Top-level keys must come before the first table: move the channel tables to the end.
    let (head, tail) = platform.split_once("[[channels]]").unwrap();
    let (channel, banks) = tail.split_once("[banks.B01]").unwrap();
    let platform = format!("{head}[banks.B01]{banks}\n[[channels]]{channel}");
    std::fs::write(day.join("platform.toml"), platform).unwrap();
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let ins = instructions(&data, DATE);
    assert_eq!(ins["20261125-P3-W1-1"].1, "1500.00", "{ins:#?}");
    assert_eq!(ins["20261125-P3-W1-2"].1, "500.00", "{ins:#?}");
    let a = |data: &Path| -> i64 {
        query(
            data,
            "SELECT balance_minor FROM balances WHERE account = 'A'",
        )[0]
        .parse()
        .unwrap()
    };
    let before = a(&data);
    let csv = write(
        tmp.path(),
        "bank.csv",
        "instruction_id,status,bank_ref,amount,currency,reason\n\
         20261125-P3-W1-1,settled,K1,1500.00,CNY,\n\
         20261125-P3-W1-2,failed,K2,500.00,CNY,AC04\n",
    );
    let run = reconcile(&data, DATE, &[csv]);
    assert_eq!(run.code, 5, "{}", run.text());
    assert!(
        run.stdout.contains("posted RET-20261125-P3-W1-2"),
        "{}",
        run.stdout
    );
    assert_eq!(a(&data) - before, 50000);
    audit_is_clean(&data);
}

// The same tests with the ledger in PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(
    a_clean_day_exits_0_and_a_rerun_records_nothing,
    one_break_of_each_kind_and_a_returned_withdrawal,
    a_failed_pay_in_is_carried_to_the_next_cycle,
    bad_bank_files_and_unposted_dates_are_refused_with_exit_2,
    suspense_assign_moves_a_deposit_to_its_owner_once,
    a_failed_part_of_a_split_withdrawal_returns_only_that_part,
);
