-- q8u: q8 without its TUMBLE windows: persons joined with the auctions they opened.
SELECT P.id, P.name, A.reserve FROM person P JOIN auction A ON P.id = A.seller
