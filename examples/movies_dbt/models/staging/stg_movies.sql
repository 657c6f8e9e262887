-- One row per movie: its year split from the title, genres as words ("Adventure, Children"),
-- and no placeholder text where MovieLens lists no genre.
select
    movieId::integer as movie_id,
    trim(regexp_replace(title, '\s*\(\d{4}\)\s*$', '')) as title,
    try_cast(regexp_extract(title, '\((\d{4})\)\s*$', 1) as integer) as year,
    nullif(replace(genres, '|', ', '), '(no genres listed)') as genres
from {{ source('movielens', 'movies') }}
