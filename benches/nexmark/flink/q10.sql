-- q10: q10's projection (Flink's nexmark writes it to a partitioned file sink; here, as for
-- every query, into a blackhole, and Weir keeps it as a view).
SELECT auction, bidder, price, date_time, extra,
       DATE_FORMAT(date_time, 'yyyy-MM-dd') AS dt,
       DATE_FORMAT(date_time, 'HH:mm') AS hm
FROM bid
