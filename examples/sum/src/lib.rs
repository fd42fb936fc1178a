//! The benchmark's trivial handler: sums the body bytes of the batch, prints nothing and
//! acknowledges everything.

use sluice_sdk::{Batch, Error, Outcome};

fn handle(batch: Batch) -> Result<Outcome, Error> {
    // `black_box` keeps the work from being optimised away: the point is to touch every byte.
    std::hint::black_box(sum(&batch));
    Ok(Outcome::ack_all())
}

sluice_sdk::export_handler!(handle);

/// The sum of every byte of every body.
fn sum(batch: &Batch) -> u64 {
    batch
        .iter()
        .flat_map(|msg| msg.body())
        .map(|&b| u64::from(b))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn sums_all_bodies() {
        let batch = testing::batch([testing::message(vec![1, 2]), testing::message(vec![255])]);
        assert_eq!(sum(&batch), 258);
    }

    #[test]
    fn acknowledges_everything() {
        let report = testing::run(handle, [testing::message("a"), testing::message("")]);
        assert_eq!(report.acked(), ["msg-1", "msg-2"]);
        assert!(report.sent().is_empty());
    }
}
