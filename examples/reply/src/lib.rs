//! Request-reply: answers price-quote requests. Each message is a JSON request
//! `{"sku": "A-1", "qty": 3}`; the handler replies with the quote,
//! `{"sku": "A-1", "qty": 3, "unit_cents": 250, "total_cents": 750}` and the attribute
//! `currency`, to the producer waiting on the message (one that enqueued with
//! `Sluice-Reply-Timeout-Ms`, or `sluice send --wait-reply`).
//!
//! A request that is not valid JSON, names an unknown SKU or asks for a quantity outside 1 to
//! 1000 is dead-lettered with the reason. Its producer gets no reply (a dead-lettered message's
//! reply would be discarded anyway): it times out and finds the reason in the dead-letter queue.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Batch, Error, Outcome, Reply};

/// Quantities a quote is given for.
const MAX_QTY: u32 = 1000;
/// The price list: SKU and unit price in cents.
const PRICES: &[(&str, u64)] = &[("A-1", 250), ("B-2", 1_000), ("C-3", 99)];
/// The currency of every price.
const CURRENCY: &str = "EUR";

fn handle(batch: Batch) -> Result<Outcome, Error> {
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        match msg.json::<Request>().and_then(quote) {
            // The reply commits with this message's acknowledgement.
            Ok(quote) => Reply::to(msg)
                .json(&quote)?
                .attribute("currency", CURRENCY)
                .send()?,
            Err(reason) => {
                outcome.dead_letter(msg, reason);
            }
        }
    }
    Ok(outcome)
}

sluice_sdk::export_handler!(handle);

/// What a producer asks for.
#[derive(Debug, Deserialize)]
struct Request {
    sku: String,
    qty: u32,
}

/// The answer.
#[derive(Debug, PartialEq, Serialize)]
struct Quote {
    sku: String,
    qty: u32,
    unit_cents: u64,
    total_cents: u64,
}

/// Prices a request, or says why it cannot be priced.
fn quote(request: Request) -> Result<Quote, Error> {
    if !(1..=MAX_QTY).contains(&request.qty) {
        return Err(Error::new(format!(
            "qty must be 1 to {MAX_QTY}, not {}",
            request.qty
        )));
    }
    let Some(&(_, unit_cents)) = PRICES.iter().find(|(sku, _)| *sku == request.sku) else {
        return Err(Error::new(format!("unknown sku `{}`", request.sku)));
    };
    Ok(Quote {
        total_cents: unit_cents * u64::from(request.qty),
        sku: request.sku,
        qty: request.qty,
        unit_cents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::Disposition;
    use sluice_sdk::testing;

    fn request(sku: &str, qty: u32) -> testing::TestMessage {
        testing::json_message(&serde_json::json!({"sku": sku, "qty": qty}))
    }

    #[test]
    fn replies_with_the_quote_to_each_request() {
        let report = testing::run(handle, [request("A-1", 3), request("C-3", 1000)]);
        assert_eq!(report.acked(), ["msg-1", "msg-2"]);
        let first = report.reply_to("msg-1").unwrap();
        assert_eq!(
            first.json::<serde_json::Value>().unwrap(),
            serde_json::json!({"sku": "A-1", "qty": 3, "unit_cents": 250, "total_cents": 750})
        );
        assert_eq!(first.attribute("currency"), Some("EUR"));
        assert_eq!(
            report
                .reply_to("msg-2")
                .unwrap()
                .json::<serde_json::Value>()
                .unwrap()["total_cents"],
            99_000
        );
        assert_eq!(report.committed_replies().len(), 2);
        assert!(report.sent().is_empty() && report.published().is_empty());
    }

    #[test]
    fn dead_letters_what_cannot_be_priced_and_replies_to_the_rest() {
        let report = testing::run(
            handle,
            [
                testing::message("{not json"),
                request("Z-9", 1),
                request("A-1", 0),
                request("B-2", 2),
            ],
        );
        assert_eq!(report.acked(), ["msg-4"]);
        let reason = |id| match report.disposition(id) {
            Some(Disposition::DeadLetter(reason)) => reason.clone(),
            other => panic!("{id}: {other:?}"),
        };
        assert!(
            reason("msg-1").starts_with("invalid JSON body: "),
            "{}",
            reason("msg-1")
        );
        assert_eq!(reason("msg-2"), "unknown sku `Z-9`");
        assert_eq!(reason("msg-3"), "qty must be 1 to 1000, not 0");
        let replied: Vec<_> = report
            .replies()
            .iter()
            .map(|r| r.message_id.as_str())
            .collect();
        assert_eq!(replied, ["msg-4"], "only priced requests are answered");
    }

    #[test]
    fn quotes_multiply_the_unit_price() {
        let quote = quote(Request {
            sku: "B-2".into(),
            qty: 7,
        })
        .unwrap();
        assert_eq!((quote.unit_cents, quote.total_cents), (1_000, 7_000));
    }
}
