use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::bankfiles::read_bank_file;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/camt")
        .join(name)
}

fn sample(name: &str) -> BankFile {
    match read_bank_file(&data(name)).unwrap() {
        Ok(file) => file,
        Err(errors) => panic!("{name}: {errors:#?}"),
    }
}

fn parse(text: &str) -> Result<BankFile, Vec<RowError>> {
    parse_camt(Path::new("bank.xml"), text.as_bytes())
}

fn chf(minor: i64) -> (Currency, AmountMinor) {
    (Currency::from_code("CHF").unwrap(), AmountMinor(minor))
}

fn date(text: &str) -> Option<BusinessDate> {
    BusinessDate::parse(text)
}

const IBAN: &str = "CH2909000000250094239";

#[test]
fn the_statement_sample_gives_balances_and_entries() {
    let file = sample("camt.053.001.04-statement-sample.xml");
    assert_eq!(file.kind.to_string(), "camt.053.001.04");
    let balances: Vec<_> = file
        .balances
        .iter()
        .map(|b| (b.kind, b.account.as_str(), b.currency, b.amount, b.date))
        .collect();
    assert_eq!(
        balances,
        [
            (
                BalanceKind::Opening,
                IBAN,
                chf(0).0,
                AmountMinor(21199319),
                date("2020-11-24")
            ),
            (
                BalanceKind::Closing,
                IBAN,
                chf(0).0,
                AmountMinor(21511221),
                date("2020-11-24")
            ),
        ]
    );
    let entries: Vec<_> = file
        .entries
        .iter()
        .map(|e| {
            (
                e.direction.unwrap(),
                (e.currency, e.amount),
                e.account_servicer_ref.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (Direction::Credit, chf(450), "0758103031480900"),
            // The entry says DBIT, its single transaction CRDT: the booking is what counts.
            (Direction::Debit, chf(7770), "0758103031480977"),
            (Direction::Credit, chf(150000), "07582000303F0C7U"),
            (Direction::Credit, chf(153700), "07582000303KBMSU"),
            (Direction::Credit, chf(169222), "07582000303KBMSU"),
        ]
    );
    // Every entry was read, none twice. (The bank's sample is not balanced: opening +
    // entries gives its forward available balance FWAV 216649.21, not CLBD.)
    let moved: i64 = file
        .entries
        .iter()
        .map(|e| match e.direction.unwrap() {
            Direction::Credit => e.amount.0,
            Direction::Debit => -e.amount.0,
        })
        .sum();
    assert_eq!(moved, 465602);
    let first = &file.entries[0];
    assert_eq!(first.entry_ref.as_deref(), Some("41100000000872849"));
    assert_eq!(first.status, EntryStatus::Booked);
    assert_eq!(first.booking_date, date("2020-11-24"));
    assert!(first
        .remittance
        .as_deref()
        .unwrap()
        .starts_with("GUTSCHRIFT CH-DD-BASISLASTSCHRIFT"));
    assert_eq!(first.at.line, 77);
}

#[test]
fn the_credit_and_debit_notifications_parse() {
    let credit = sample("camt.054-credit-sample.xml");
    assert_eq!(credit.kind.to_string(), "camt.054.001.04");
    assert!(credit.balances.is_empty());
    let [c] = credit.entries.as_slice() else {
        panic!("{:?}", credit.entries)
    };
    assert_eq!(c.account.as_deref(), Some(IBAN));
    assert_eq!((c.currency, c.amount), chf(150000));
    assert_eq!(c.direction, Some(Direction::Credit));
    assert_eq!(c.booking_date, date("2019-04-24"));
    assert_eq!(c.value_date, date("2019-04-25"));
    assert_eq!(c.account_servicer_ref.as_deref(), Some("074820002ZZ9J42U"));
    assert_eq!(c.end_to_end_id, None);
    assert!(!c.reversal);

    let debit = sample("camt.054-debit-sample.xml");
    let [d] = debit.entries.as_slice() else {
        panic!("{:?}", debit.entries)
    };
    assert_eq!((d.currency, d.amount), chf(91300));
    assert_eq!(d.direction, Some(Direction::Debit));
    assert_eq!(d.end_to_end_id.as_deref(), Some("20190424001255000100006"));
    // The transaction's own reference wins over the entry's.
    assert_eq!(d.account_servicer_ref.as_deref(), Some("25-1120172999-2"));
}

#[test]
fn a_batch_booking_becomes_one_entry_per_transaction() {
    let file = sample("camt.054-notification-sample-2.xml");
    let got: Vec<_> = file
        .entries
        .iter()
        .map(|e| {
            (
                e.end_to_end_id.clone().unwrap(),
                e.instruction_id.clone().unwrap(),
                e.amount.0,
                e.remittance.clone().unwrap(),
            )
        })
        .collect();
    let want = [
        (
            "EndToEndId-001-03-01",
            "InstrId-001-03-02",
            40000,
            "Kontouebertrag",
        ),
        (
            "EndToEndId-001-03-02",
            "InstrId-001-03-01",
            35000,
            "Kontouebertrag",
        ),
        (
            "EndToEndId-001-03-03",
            "InstrId-001-03-03",
            45000,
            "Kontouebertrag",
        ),
        (
            "EndToEndId-001-03-04",
            "InstrId-001-01-03",
            15000,
            "Rg.-Nr. 001",
        ),
        (
            "EndToEndId-001-03-05",
            "InstrId-001-01-01",
            5000,
            "Rg.-Nr. 1234567890",
        ),
        (
            "EndToEndId-001-03-06",
            "InstrId-001-01-02",
            10000,
            "Rg.-Nr. 987654321",
        ),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(e, i, a, r)| (e.to_string(), i.to_string(), *a, r.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(file
        .entries
        .iter()
        .all(|e| e.direction == Some(Direction::Credit) && e.booking_date == date("2020-06-17")));
    assert_eq!(
        file.entries[2].account_servicer_ref.as_deref(),
        Some("0000000000000003")
    );

    let file = sample("camt.054-notification-sample-3.xml");
    let got: Vec<_> = file
        .entries
        .iter()
        .map(|e| (e.end_to_end_id.as_deref(), e.amount.0))
        .collect();
    assert_eq!(
        got,
        [
            (Some("1006265-aic5dL-75dzf3jk9-cf2d5e9"), 77829),
            (None, 91393)
        ]
    );
    assert_eq!(
        file.entries[1].entry_ref.as_deref(),
        Some("CH7730000001250094239")
    );
}

#[test]
fn a_payment_initiation_is_refused_as_not_a_bank_report() {
    let errors = read_bank_file(&data("pain.001.001.03-ch-sample.xml"))
        .unwrap()
        .unwrap_err();
    let text = errors[0].to_string();
    assert!(
        text.contains("pain.001.001.03-ch-sample.xml:3: line 3, column")
            && text.contains("<CstmrCdtTrfInitn> is not a bank-to-customer"),
        "{text}"
    );
}

/// A version .08 notification with a namespace prefix, `Sts/Cd`, an `Othr` account id, a
/// date-time booking date and a returned transfer.
const V08: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<n:Document xmlns:n="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <n:BkToCstmrDbtCdtNtfctn>
    <n:GrpHdr><n:MsgId>M1</n:MsgId><n:CreDtTm>2026-11-25T18:00:00</n:CreDtTm></n:GrpHdr>
    <n:Ntfctn>
      <n:Id>N1</n:Id>
      <n:Acct><n:Id><n:Othr><n:Id>CUS-B02</n:Id></n:Othr></n:Id><n:Ccy>CNY</n:Ccy></n:Acct>
      <n:Ntry>
        <n:Amt Ccy="CNY">8630.15</n:Amt>
        <n:CdtDbtInd>DBIT</n:CdtDbtInd>
        <n:Sts><n:Cd>BOOK</n:Cd></n:Sts>
        <n:BookgDt><n:DtTm>2026-11-25T17:30:00+08:00</n:DtTm></n:BookgDt>
        <n:AcctSvcrRef>B02-0001</n:AcctSvcrRef>
        <n:BkTxCd/>
        <n:NtryDtls><n:TxDtls>
          <n:Refs><n:EndToEndId>20261125-P1-B02-CNY</n:EndToEndId></n:Refs>
          <n:RmtInf><n:Ustrd>Clearhouse &amp; settlement</n:Ustrd></n:RmtInf>
        </n:TxDtls></n:NtryDtls>
      </n:Ntry>
      <n:Ntry>
        <n:Amt Ccy="CNY">10.00</n:Amt>
        <n:CdtDbtInd>CRDT</n:CdtDbtInd>
        <n:RvslInd>true</n:RvslInd>
        <n:Sts><n:Cd>BOOK</n:Cd></n:Sts>
        <n:BookgDt><n:Dt>2026-11-25</n:Dt></n:BookgDt>
        <n:NtryDtls><n:TxDtls>
          <n:Refs><n:EndToEndId>NOTPROVIDED</n:EndToEndId><n:InstrId>20261125-P3-W1</n:InstrId></n:Refs>
          <n:RtrInf><n:Rsn><n:Cd>AC04</n:Cd></n:Rsn><n:AddtlInf>account closed</n:AddtlInf></n:RtrInf>
        </n:TxDtls></n:NtryDtls>
      </n:Ntry>
    </n:Ntfctn>
  </n:BkToCstmrDbtCdtNtfctn>
</n:Document>
"#;

#[test]
fn reads_version_08_with_prefixes_codes_and_returns() {
    let file = parse(V08).unwrap();
    assert_eq!(file.kind.to_string(), "camt.054.001.08");
    let [paid, returned] = file.entries.as_slice() else {
        panic!("{:?}", file.entries)
    };
    assert_eq!(paid.account.as_deref(), Some("CUS-B02"));
    assert_eq!(paid.amount, AmountMinor(863015));
    assert_eq!(paid.status, EntryStatus::Booked);
    assert_eq!(paid.booking_date, date("2026-11-25"));
    assert_eq!(paid.end_to_end_id.as_deref(), Some("20261125-P1-B02-CNY"));
    assert_eq!(paid.remittance.as_deref(), Some("Clearhouse & settlement"));
    assert!(!paid.reversal);
    assert_eq!(paid.at.line, 8);
    assert!(returned.reversal);
    assert_eq!(returned.end_to_end_id, None);
    assert_eq!(returned.instruction_id.as_deref(), Some("20261125-P3-W1"));
    assert_eq!(returned.reason.as_deref(), Some("AC04: account closed"));
}

#[test]
fn malformed_xml_names_line_and_column() {
    let text = "<Document>\n  <BkToCstmrStmt>\n    <Stmt>\n  </BkToCstmrStmt>\n</Document>\n";
    let errors = parse(text).unwrap_err();
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with("bank.xml:4: line 4, column 3: malformed XML"),
        "{shown}"
    );
    let errors = parse("<Document><BkToCstmrStmt><Stmt>").unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .contains("the document ends inside <Stmt>"),
        "{errors:?}"
    );
    let errors = parse("<Document><BkToCstmrStmt>&nbsp;</BkToCstmrStmt></Document>").unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .contains("unknown entity reference &nbsp;"),
        "{errors:?}"
    );
    let errors = parse("<Statement/>").unwrap_err();
    assert!(errors[0]
        .to_string()
        .contains("not an ISO 20022 <Document>"));
}

#[test]
fn bad_content_is_reported_per_field_with_its_line() {
    let text = V08
        .replace("8630.15", "8630,15")
        .replace(r#"Ccy="CNY">10.00"#, r#"Ccy="XYZ">10.00"#)
        .replace(
            "<n:Cd>BOOK</n:Cd></n:Sts>\n        <n:BookgDt><n:Dt>",
            "<n:Cd>DONE</n:Cd></n:Sts>\n        <n:BookgDt><n:Dt>",
        );
    let errors = parse(&text).unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown[0].starts_with("bank.xml:9: column Ntry/Amt: value \"8630,15\": is not a decimal"),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|s| s
            .contains("bank.xml:21: column Ntry/Amt@Ccy: value \"XYZ\": is not a known ISO 4217")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("column Ntry/Sts: value \"DONE\": is not BOOK, PDNG, FUTR or INFO")),
        "{shown:#?}"
    );
}

#[test]
fn an_entry_before_any_account_is_an_error() {
    let text = V08.replace(
        "<n:Acct><n:Id><n:Othr><n:Id>CUS-B02</n:Id></n:Othr></n:Id><n:Ccy>CNY</n:Ccy></n:Acct>",
        "",
    );
    let errors = parse(&text).unwrap_err();
    assert!(
        errors[0].to_string().contains("names no account"),
        "{errors:?}"
    );
}

proptest! {
    /// Whatever the bytes, the reader answers; it never panics.
    #[test]
    fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_camt(Path::new("x.xml"), &bytes);
    }

    /// Nor on a real file cut anywhere.
    #[test]
    fn never_panics_on_a_truncated_file(cut in 0usize..5777) {
        let bytes = std::fs::read(data("camt.053.001.04-statement-sample.xml")).unwrap();
        let cut = cut.min(bytes.len());
        let result = parse_camt(Path::new("x.xml"), &bytes[..cut]);
        prop_assert!(cut == bytes.len() || result.is_err() || cut > bytes.len() - 16);
    }
}

#[test]
fn known_names_are_sorted_for_binary_search() {
    assert!(NAMES.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(intern("Ntry"), "Ntry");
    assert_eq!(intern("Nty"), "*");
}
