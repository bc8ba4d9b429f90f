-- q5u: q5 without its window: bids per auction.
SELECT auction, count(*) AS num FROM bid GROUP BY auction
