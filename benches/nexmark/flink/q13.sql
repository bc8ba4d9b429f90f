-- q13: bounded side input (side_input(key, value), 10,000 rows, made by the driver), joined
-- as a regular join (Flink's nexmark uses a processing-time lookup join, FOR SYSTEM_TIME
-- AS OF, which needs a lookup connector; the filesystem connector is not one).
SELECT B.auction, B.bidder, B.price, B.date_time, S.`value`
FROM bid AS B INNER JOIN side_input AS S ON MOD(B.auction, 10000) = S.`key`
