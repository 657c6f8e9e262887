-- The example warehouse behind the quickstart: the MovieLens movies table.
-- embedsql runs this script (relative paths resolve against the repository root) to build
-- ./warehouse.duckdb on first use. Data terms: data/README.md (MovieLens, non-commercial).
CREATE TABLE movies AS
SELECT *
FROM read_csv(
    'data/movies.csv',
    header = true,
    delim = ',',
    quote = '"',
    escape = '"',
    columns = {'movieId': 'INTEGER', 'title': 'VARCHAR', 'genres': 'VARCHAR'}
);
