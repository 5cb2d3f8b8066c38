{#- Incremental strategy `person_steps` (int_journey_steps): the batch holds, per person, either
    every step (the person's path was recomputed: the batch has their step 1) or only the steps
    appended after the stored last one. Deletes the stored rows of the recomputed persons and of
    every event in the batch (an event that moved to another person leaves its old person),
    then inserts the batch. Appended persons keep their stored steps untouched; the unique
    (person_id, step_number) and event_id indexes turn any overlap into an error, not a
    duplicate. `= any(array(...))`: the keys go through the indexes whatever the planner guesses
    about the batch (a hash join against the whole table would read every row). -#}
{% macro get_incremental_person_steps_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    delete from {{ target }}
    where person_id = any(array(select person_id from {{ source }} where step_number = 1));

    delete from {{ target }}
    where event_id = any(array(select event_id from {{ source }}));

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}
