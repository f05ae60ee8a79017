//! pain.001.001.10 `CstmrCdtTrfInitn`: the platform asks the bank holding a custody account to
//! pay members' withdrawals to their bound accounts. One file per debtor bank (phase 3), one
//! `PmtInf` per currency (in code order), one `CdtTrfTxInf` per withdrawal. Element order
//! follows GroupHeader95, PaymentInstruction34 and CreditTransferTransaction40.

use std::collections::BTreeMap;

use super::xml::XmlWriter;
use super::{
    amount_text, control_sum, name_text, reference_id, write_account, write_agent, write_channel,
    write_remittance, Message, Scheme, Transfer,
};

pub(super) fn write(m: &Message) -> Vec<u8> {
    let mut w = XmlWriter::document("Document", Scheme::Pain001.namespace());
    let msg_id = m.message_id();
    let platform = name_text(&m.initiating_party);
    w.open("CstmrCdtTrfInitn");
    w.open("GrpHdr");
    w.leaf("MsgId", &msg_id);
    w.leaf("CreDtTm", &m.creation_time());
    w.leaf("NbOfTxs", &m.transfers.len().to_string());
    w.leaf("CtrlSum", &control_sum(m.transfers.iter()));
    write_party(&mut w, "InitgPty", platform.as_deref());
    w.close();
    let mut by_currency: BTreeMap<&str, Vec<&Transfer>> = BTreeMap::new();
    for t in &m.transfers {
        by_currency.entry(t.currency.code()).or_default().push(t);
    }
    let date = m.business_date.to_string();
    for (code, transfers) in by_currency {
        let first = transfers[0];
        w.open("PmtInf");
        w.leaf("PmtInfId", &reference_id(&format!("{msg_id}-{code}")));
        w.leaf("PmtMtd", "TRF");
        w.leaf("NbOfTxs", &transfers.len().to_string());
        w.leaf("CtrlSum", &control_sum(transfers.iter().copied()));
        w.open("ReqdExctnDt");
        w.leaf("Dt", &date);
        w.close();
        write_party(&mut w, "Dbtr", platform.as_deref());
        write_account(&mut w, "DbtrAcct", &first.debtor_account);
        write_agent(&mut w, "DbtrAgt", &first.debtor_agent);
        for t in transfers {
            write_transaction(&mut w, t);
        }
        w.close();
    }
    w.finish()
}

fn write_transaction(w: &mut XmlWriter, t: &Transfer) {
    let id = reference_id(&t.instruction_id);
    w.open("CdtTrfTxInf");
    w.open("PmtId");
    w.leaf("InstrId", &id);
    w.leaf("EndToEndId", &id);
    w.close();
    write_channel(w, t.channel.as_deref());
    w.open("Amt");
    w.leaf_attr(
        "InstdAmt",
        Some(("Ccy", t.currency.code())),
        &amount_text(t),
    );
    w.close();
    write_agent(w, "CdtrAgt", &t.creditor_agent);
    write_party(
        w,
        "Cdtr",
        t.creditor_name.as_deref().and_then(name_text).as_deref(),
    );
    write_account(w, "CdtrAcct", &t.creditor_account);
    write_remittance(w, t);
    w.close();
}

/// `PartyIdentification135` with its name, when there is one (every element is optional).
fn write_party(w: &mut XmlWriter, tag: &'static str, name: Option<&str>) {
    w.open(tag);
    if let Some(name) = name {
        w.leaf("Nm", name);
    }
    w.close();
}
