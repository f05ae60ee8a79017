//! pacs.009.001.09 `FICdtTrf`: one file per debtor bank and phase, one `CdtTrfTxInf` per
//! settlement leg. Element order follows the schema's sequences (GroupHeader93,
//! CreditTransferTransaction44); optional elements not listed are not written.

use super::xml::XmlWriter;
use super::{
    amount_text, control_sum, reference_id, write_account, write_agent, write_channel,
    write_remittance, Message, Scheme,
};

/// Settlement by the instructed agent: the debtor bank books the transfer itself (on its own
/// books for an in-book leg, through its usual route to the delivery bank otherwise).
const SETTLEMENT_METHOD: &str = "INDA";

pub(super) fn write(m: &Message) -> Vec<u8> {
    let mut w = XmlWriter::document("Document", Scheme::Pacs009.namespace());
    w.open("FICdtTrf");
    w.open("GrpHdr");
    w.leaf("MsgId", &m.message_id());
    w.leaf("CreDtTm", &m.creation_time());
    w.leaf("NbOfTxs", &m.transfers.len().to_string());
    w.leaf("CtrlSum", &control_sum(m.transfers.iter()));
    w.open("SttlmInf");
    w.leaf("SttlmMtd", SETTLEMENT_METHOD);
    w.close();
    write_agent(&mut w, "InstdAgt", &m.debtor_agent);
    w.close();
    let date = m.business_date.to_string();
    for t in &m.transfers {
        let id = reference_id(&t.instruction_id);
        w.open("CdtTrfTxInf");
        w.open("PmtId");
        w.leaf("InstrId", &id);
        w.leaf("EndToEndId", &id);
        w.leaf("TxId", &id);
        w.close();
        write_channel(&mut w, t.channel.as_deref());
        w.leaf_attr(
            "IntrBkSttlmAmt",
            Some(("Ccy", t.currency.code())),
            &amount_text(t),
        );
        w.leaf("IntrBkSttlmDt", &date);
        write_agent(&mut w, "Dbtr", &t.debtor_agent);
        write_account(&mut w, "DbtrAcct", &t.debtor_account);
        write_agent(&mut w, "Cdtr", &t.creditor_agent);
        write_account(&mut w, "CdtrAcct", &t.creditor_account);
        write_remittance(&mut w, t);
        w.close();
    }
    w.finish()
}
