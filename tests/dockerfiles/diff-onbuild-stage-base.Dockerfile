# A stage with ONBUILD triggers used as the base of another stage: the
# triggers run there, and the child's config has no OnBuild.
FROM localhost/bbase:1 AS parent
ONBUILD RUN echo triggered > /onbuild
ONBUILD COPY a.txt /

FROM parent
RUN echo child > /child
