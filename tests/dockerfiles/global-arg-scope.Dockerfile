# A global ARG is in scope in FROM lines, not in a stage until the stage
# declares it again (`ARG V`); an ENV of the same name is used as is.
ARG BASE=scratch
ARG V=1
FROM ${BASE} AS first
ENV UNSET=$V DEFAULT=${V:-fallback} ALT=${V:+alt}
LABEL v=${V}
ARG V
LABEL redeclared=$V

FROM first
ENV STILL_UNSET="$V"
COPY --from=first / /copy-of-first/
ONBUILD LABEL trigger=$V

FROM 1
ENV V=from-env
LABEL env-wins=$V
