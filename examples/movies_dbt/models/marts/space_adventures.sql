-- The ten movies nearest to a phrase. embed() comes from the embedsql plugin (profiles.yml): it
-- embeds the phrase once with the model of movie_embeddings and keeps it in embedsql's cache.
-- A table, not a view: a view calling embed() could only be read where the plugin is loaded.
{{ config(materialized='table') }}

select
    m.movie_id,
    m.title,
    m.year,
    m.genres,
    array_cosine_similarity(e.embedding, embed('{{ var("phrase", "space adventure for kids") }}')) as similarity
from {{ ref('stg_movies') }} as m
join {{ source('embedsql', 'movie_embeddings') }} as e using (movie_id)
order by similarity desc, m.movie_id
limit 10
