"""The delivery pipelines: Cloud Build files and triggers checked against the Cloud Build types,
Dockerfiles, and the commands the pipelines run (`pipelines check`, `pr-comment`, `pr-open`)."""
