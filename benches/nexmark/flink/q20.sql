-- q20: expand bid with auction (a join; Flink needs distinct names for the columns both
-- tables have: date_time and extra of the auction are renamed a_date_time and a_extra).
SELECT
    auction, bidder, price, channel, url, B.date_time AS date_time, B.extra AS extra,
    item_name, description, initial_bid, reserve, A.date_time AS a_date_time, expires, seller,
    category, A.extra AS a_extra
FROM bid AS B INNER JOIN auction AS A ON B.auction = A.id
WHERE A.category = 10
