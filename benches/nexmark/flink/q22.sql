-- q22: split the url into directories. Flink's SPLIT_INDEX counts from 0, so
-- SPLIT_INDEX(url, '/', 3) is Postgres' split_part(url, '/', 4).
SELECT
    auction, bidder, price, channel,
    SPLIT_INDEX(url, '/', 3) AS dir1,
    SPLIT_INDEX(url, '/', 4) AS dir2,
    SPLIT_INDEX(url, '/', 5) AS dir3
FROM bid
