FROM localhost/bkbase:1
ARG SET=value
ARG EMPTY=
ENV R1=${SET:-d} R2=${UNSET:-d} R3=${EMPTY:-d} R4=${SET:+alt} R5=${UNSET:+alt} R6=${EMPTY:+alt}
ENV R7=${SET:-$EMPTY} R8="${UNSET:-two words}" R9=${SET:+${EMPTY:-nested}}
