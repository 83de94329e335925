FROM localhost/bkbase:1
ENV A=1
ENV L1=\$A L2='$A' L3="$A"
