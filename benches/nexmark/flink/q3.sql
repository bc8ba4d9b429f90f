-- q3: local item suggestion (an incremental join of auction and person).
-- The generator (the nexmark crate, as RisingWave's) writes states in lower case ('or', 'id',
-- 'ca'), so the filter is in lower case too, as in RisingWave's q3; Weir's q3 must match it.
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'or' OR P.state = 'id' OR P.state = 'ca')
