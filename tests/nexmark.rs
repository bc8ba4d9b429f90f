//! The nexmark connector across a crash: a rate-limited generator killed with SIGKILL mid-run
//! picks up after its last durable record in every partition, so its source ends with exactly
//! the events the generator makes for the same options: none lost, none twice.

mod common;

use std::time::{Duration, Instant};

use common::{WeirServer, rows};
use datafusion::arrow::array::{Array, Int64Array, StringArray};
use weir::sources::nexmark::{Generator, Kind, Sequence};

const EVENTS: u64 = 20_000;
const WAIT_MAX: Duration = Duration::from_secs(120);

async fn count(client: &tokio_postgres::Client) -> u64 {
    let n: i64 = client
        .query_one("SELECT count(*) FROM bid", &[])
        .await
        .unwrap()
        .get(0);
    n as u64
}

/// (auction, bidder, price, extra) of every bid the generator makes, sorted.
fn expected_bids() -> Vec<Vec<String>> {
    let sequence = Sequence {
        events: Some(EVENTS),
        ..Sequence::default()
    };
    let mut generator = Generator::new(Kind::Bid, &sequence, 0, 1);
    let mut out = Vec::new();
    while let Some((batch, _)) = generator.next_batch(4096).unwrap() {
        let int = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let (auction, bidder, price) = (int(0), int(1), int(2));
        let extra = batch
            .column(6)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for r in 0..batch.num_rows() {
            out.push(vec![
                auction.value(r).to_string(),
                bidder.value(r).to_string(),
                price.value(r).to_string(),
                extra.value(r).to_string(),
            ]);
        }
        assert_eq!(extra.null_count(), 0);
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_generator_killed_mid_run_resumes_after_its_last_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start(&dir.path().join("data"), 50).await;
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE bid WITH (connector = 'nexmark', kind = 'bid', events = {EVENTS}, \
             events_per_second = 8000, partitions = 3)"
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT_MAX;
    let before_kill = loop {
        let n = count(&client).await;
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the generator wrote nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let total = Sequence::count_of(Kind::Bid, EVENTS);
    assert!(before_kill < total, "killed before the generator was done");
    server.restart().await;
    let client = server.connect().await;
    while count(&client).await < total {
        assert!(
            Instant::now() < deadline,
            "the generator did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rows(&client, "SELECT auction, bidder, price, extra FROM bid")
        .await
        .unwrap();
    assert_eq!(got.len() as u64, total);
    assert!(
        got == expected_bids(),
        "the source holds other events than the generator makes"
    );
}
