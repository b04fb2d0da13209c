-- input: {{rows}}, {{index}}                           output: user_factors, item_factors
--
-- `persona als`: the fitted factors of one side under the original ids.
SELECT x.id AS {{column}}, f.factors
FROM {{rows}} f
JOIN {{index}} x ON f.{{side}} = x.idx
