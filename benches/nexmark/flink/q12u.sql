-- q12u: q12 without its processing-time window: bids per bidder.
SELECT bidder, count(*) AS bid_count FROM bid GROUP BY bidder
