-- q7u: q7 without its window: the highest bid.
SELECT max(price) AS maxprice FROM bid
