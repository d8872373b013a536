-- Run once by the postgres image, on an empty data volume: one database per service.
CREATE DATABASE orders;
CREATE DATABASE billing;
CREATE DATABASE notifications;
