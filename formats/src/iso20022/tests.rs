use std::path::PathBuf;
use std::process::Command;

use super::*;

fn date() -> BusinessDate {
    BusinessDate::parse("2026-11-25").unwrap()
}

fn agent(id: &str) -> Agent {
    Agent {
        id: id.into(),
        bic: None,
    }
}

fn transfer(id: &str, code: &str, minor: i64, debtor: &str, creditor: &str) -> Transfer {
    Transfer {
        instruction_id: id.into(),
        kind: "pay_in".into(),
        channel: None,
        currency: Currency::from_code(code).unwrap(),
        amount: AmountMinor(minor),
        debtor_agent: agent(debtor),
        debtor_account: format!("CUS-{debtor}"),
        creditor_agent: agent(creditor),
        creditor_account: "DLV-001".into(),
        creditor_name: None,
    }
}

fn message(phase: u8, bank: &str, transfers: Vec<Transfer>) -> Message {
    Message {
        business_date: date(),
        phase,
        debtor_agent: agent(bank),
        initiating_party: "Sample Exchange".into(),
        transfers,
    }
}

fn text(scheme: Scheme, m: &Message) -> String {
    String::from_utf8(scheme.write(m).unwrap()).unwrap()
}

/// Validates `xml` against the repository's copy of the schema. Fails when xmllint is
/// missing: CI installs it (libxml2-utils), and a skipped validation would prove nothing.
fn assert_valid(scheme: Scheme, xml: &str) {
    let xsd = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("iso20022/xsd")
        .join(match scheme {
            Scheme::Pacs009 => "pacs.009.001.09.xsd",
            Scheme::Pain001 => "pain.001.001.10.xsd",
        });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint must be installed (Debian: apt-get install libxml2-utils)");
    assert!(
        out.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pacs009_of_the_worked_example() {
    let m = message(
        1,
        "B02",
        vec![transfer(
            "20261125-P1-B02-CNY",
            "CNY",
            863_015,
            "B02",
            "B01",
        )],
    );
    let xml = text(Scheme::Pacs009, &m);
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.009.001.09">
  <FICdtTrf>
    <GrpHdr>
      <MsgId>20261125-P1-B02</MsgId>
      <CreDtTm>2026-11-25T18:00:00</CreDtTm>
      <NbOfTxs>1</NbOfTxs>
      <CtrlSum>8630.15</CtrlSum>
      <SttlmInf>
        <SttlmMtd>INDA</SttlmMtd>
      </SttlmInf>
      <InstdAgt>
        <FinInstnId>
          <Othr>
            <Id>B02</Id>
          </Othr>
        </FinInstnId>
      </InstdAgt>
    </GrpHdr>
    <CdtTrfTxInf>
      <PmtId>
        <InstrId>20261125-P1-B02-CNY</InstrId>
        <EndToEndId>20261125-P1-B02-CNY</EndToEndId>
        <TxId>20261125-P1-B02-CNY</TxId>
      </PmtId>
      <IntrBkSttlmAmt Ccy="CNY">8630.15</IntrBkSttlmAmt>
      <IntrBkSttlmDt>2026-11-25</IntrBkSttlmDt>
      <Dbtr>
        <FinInstnId>
          <Othr>
            <Id>B02</Id>
          </Othr>
        </FinInstnId>
      </Dbtr>
      <DbtrAcct>
        <Id>
          <Othr>
            <Id>CUS-B02</Id>
          </Othr>
        </Id>
      </DbtrAcct>
      <Cdtr>
        <FinInstnId>
          <Othr>
            <Id>B01</Id>
          </Othr>
        </FinInstnId>
      </Cdtr>
      <CdtrAcct>
        <Id>
          <Othr>
            <Id>DLV-001</Id>
          </Othr>
        </Id>
      </CdtrAcct>
      <RmtInf>
        <Ustrd>pay_in 20261125-P1-B02-CNY</Ustrd>
      </RmtInf>
    </CdtTrfTxInf>
  </FICdtTrf>
</Document>
"#
    );
    assert_valid(Scheme::Pacs009, &xml);
    assert_eq!(
        Scheme::Pacs009.write(&m).unwrap(),
        Scheme::Pacs009.write(&m).unwrap()
    );
}

#[test]
fn mixed_currencies_channels_bics_and_long_ids_validate() {
    let mut jpy = transfer("20261125-P1-B02-JPY-1", "JPY", 5_000_000, "B02", "B01");
    jpy.channel = Some("bulk".into());
    let mut bhd = transfer("20261125-P1-B02-BHD", "BHD", 1_234, "B02", "B01");
    bhd.channel = Some("large-value".into());
    let long_id = format!("20261125-P1-{}-CNY-12", "B".repeat(32));
    let mut bank = agent("B02");
    bank.bic = Some("BANKCNBJXXX".into());
    let mut long = transfer(&long_id, "CNY", 10, "B02", "B01");
    for t in [&mut jpy, &mut bhd, &mut long] {
        t.debtor_agent = bank.clone();
    }
    let mut m = message(1, "B02", vec![jpy, bhd, long]);
    m.debtor_agent = bank;
    let xml = text(Scheme::Pacs009, &m);
    assert_valid(Scheme::Pacs009, &xml);
    // 5000000 JPY + 1.234 BHD + 0.10 CNY, at three decimals.
    assert!(xml.contains("<CtrlSum>5000001.334</CtrlSum>"), "{xml}");
    assert!(xml.contains(r#"<IntrBkSttlmAmt Ccy="JPY">5000000</IntrBkSttlmAmt>"#));
    assert!(xml.contains(r#"<IntrBkSttlmAmt Ccy="BHD">1.234</IntrBkSttlmAmt>"#));
    assert!(
        xml.contains("<LclInstrm>\n          <Prtry>bulk</Prtry>"),
        "{xml}"
    );
    assert!(xml.contains("<BICFI>BANKCNBJXXX</BICFI>"));
    let short = reference_id(&long_id);
    assert_eq!(short.chars().count(), ID_CHARS_MAX);
    assert!(short.starts_with("20261125-P1-BBBBBBBBBB-"), "{short}");
    assert!(xml.contains(&format!("<EndToEndId>{short}</EndToEndId>")));
    assert!(xml.contains(&format!("<Ustrd>pay_in {long_id}</Ustrd>")));
}

#[test]
fn reference_ids_are_short_deterministic_and_distinct() {
    assert_eq!(reference_id("20261125-P3-W1"), "20261125-P3-W1");
    let exactly = "x".repeat(ID_CHARS_MAX);
    assert_eq!(reference_id(&exactly), exactly);
    let a = format!("20261125-P3-{}", "A".repeat(32));
    let b = format!("20261125-P3-{}B", "A".repeat(31));
    assert_eq!(reference_id(&a), reference_id(&a));
    assert_ne!(reference_id(&a), reference_id(&b));
    assert_eq!(reference_id(&b).len(), ID_CHARS_MAX);
}

#[test]
fn pain001_groups_withdrawals_per_currency() {
    let withdrawal = |id: &str, code: &str, minor: i64, name: &str| Transfer {
        instruction_id: id.into(),
        kind: "withdrawal".into(),
        channel: None,
        currency: Currency::from_code(code).unwrap(),
        amount: AmountMinor(minor),
        debtor_agent: agent("B01"),
        debtor_account: "CUS-B01".into(),
        creditor_agent: agent("ICBC-0001"),
        creditor_account: "6222 0000 0000 0001".into(),
        creditor_name: Some(name.into()),
    };
    let mut m = message(
        3,
        "B01",
        vec![
            withdrawal("20261125-P3-W2", "USD", 150, "Member & Sons <Ltd>"),
            withdrawal("20261125-P3-W1", "CNY", 200_000, "甲公司\n有限"),
            withdrawal("20261125-P3-W3", "CNY", 1, &"N".repeat(200)),
        ],
    );
    m.initiating_party = "Sample \"Exchange\"".into();
    let xml = text(Scheme::Pain001, &m);
    assert_valid(Scheme::Pain001, &xml);
    assert!(
        xml.contains("<NbOfTxs>3</NbOfTxs>\n      <CtrlSum>2001.51</CtrlSum>"),
        "{xml}"
    );
    let cny = xml
        .find("<PmtInfId>20261125-P3-B01-CNY</PmtInfId>")
        .unwrap();
    let usd = xml
        .find("<PmtInfId>20261125-P3-B01-USD</PmtInfId>")
        .unwrap();
    assert!(cny < usd);
    assert!(xml.contains("<Nm>Member &amp; Sons &lt;Ltd&gt;</Nm>"));
    assert!(xml.contains("<Nm>甲公司 有限</Nm>"));
    assert!(xml.contains(&format!("<Nm>{}</Nm>", "N".repeat(140))));
    assert!(xml.contains("<Nm>Sample \"Exchange\"</Nm>"));
    assert!(xml.contains("<Dt>2026-11-25</Dt>"));
}

#[test]
fn refuses_what_a_valid_file_cannot_carry() {
    let ok = || message(1, "B02", vec![transfer("I1", "CNY", 1, "B02", "B01")]);
    let refuse = |m: Message| Scheme::Pacs009.write(&m).unwrap_err().to_string();

    assert!(refuse(message(1, "B02", vec![])).contains("has no transfer"));
    let mut m = ok();
    m.transfers[0].amount = AmountMinor(0);
    assert!(refuse(m).contains("must be greater than zero"));
    let mut m = ok();
    m.transfers[0].amount = AmountMinor(1_000_000_000_000_000_000);
    assert!(refuse(m).contains("more than 18 digits"));
    let mut m = ok();
    m.transfers[0].debtor_agent = agent("B03");
    assert!(refuse(m).contains("is not the bank of its file"));
    let mut m = ok();
    m.transfers[0].creditor_account = "1".repeat(35);
    assert!(refuse(m).contains("at most 34"));
    let mut m = ok();
    m.transfers[0].creditor_account = "12\u{7}3".into();
    assert!(refuse(m).contains("U+0007"));
    let mut m = ok();
    m.transfers = vec![transfer("I1", "CNY", 999_999_999_999_999_999, "B02", "B01"); 2];
    assert!(refuse(m).contains("control sum"));
}

#[test]
fn file_names_and_phase_selection() {
    assert_eq!(Scheme::Pacs009.file_name(1, "B02"), "pacs009-P1-B02.xml");
    assert_eq!(Scheme::Pain001.file_name(3, "B01"), "pain001-P3-B01.xml");
    assert!(Scheme::is_file_of_phase("pacs009-P1-B02.xml", 1));
    assert!(!Scheme::is_file_of_phase("pacs009-P1-B02.xml", 2));
    assert!(Scheme::is_file_of_phase("pain001-P3-B-P2-.xml", 3));
    assert!(!Scheme::is_file_of_phase("instructions.csv", 1));
}
