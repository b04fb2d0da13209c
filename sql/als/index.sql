-- input: als_input                                    output: als_users, als_items
--
-- `persona als`: integer ids for the users (or items), ordered by the original id, so that the
-- same data gives the same ids. {{column}} is the quoted user or item column; {{usable}} keeps
-- the rows with both ids and a usable weight.
SELECT id, CAST(ROW_NUMBER() OVER (ORDER BY id) - 1 AS INT) AS idx
FROM (
  SELECT DISTINCT {{column}} AS id
  FROM als_input
  WHERE {{column}} IS NOT NULL AND {{usable}}
)
