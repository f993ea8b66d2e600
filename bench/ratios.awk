# bench/ratios.awk: medians and ratios (stillpoint / restic, stillpoint / kopia) from the raw.tsv
# rows bench/compare.sh records: awk -f bench/ratios.awk RAW.tsv
# columns: set profile tool phase run status wall user sys rss_kib in out repo_bytes
BEGIN { FS="\t" }
$6=="ok" { k=$1 SUBSEP $2 SUBSEP $4 SUBSEP $3; n[k]++; w[k,n[k]]=$7; c[k,n[k]]=$8+$9; r[k,n[k]]=$10/1024; if ($13!="-") z[k,n[k]]=$13/1048576; keys[$1 SUBSEP $2 SUBSEP $4]=1 }
function med(arr, k, cnt,   i, j, t, v) { for (i=1;i<=cnt;i++) v[i]=arr[k,i]; for (i=1;i<=cnt;i++) for (j=i+1;j<=cnt;j++) if (v[j]<v[i]) { t=v[i]; v[i]=v[j]; v[j]=t }; return (cnt%2) ? v[(cnt+1)/2] : (v[cnt/2]+v[cnt/2+1])/2 }
END {
  printf "| set | profile | measure | runs | stillpoint s | restic s | kopia s | wall vs restic | wall vs kopia | RSS MiB (sp/restic/kopia) | RSS vs restic | RSS vs kopia | repo vs restic | repo vs kopia |\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
  split("initial unchanged changed restore check", ph, " ")
  split("mixed many-small big", sets, " "); split("default fastest", profs, " ")
  for (si=1; si<=3; si++) for (pi=1; pi<=2; pi++) for (p=1; p<=5; p++) {
    b=sets[si] SUBSEP profs[pi] SUBSEP ph[p]; if (!(b in keys)) continue
    s=b SUBSEP "stillpoint"; re=b SUBSEP "restic"; ko=b SUBSEP "kopia"
    sw=med(w,s,n[s]); rw=med(w,re,n[re]); kw=med(w,ko,n[ko]); sr=med(r,s,n[s]); rr=med(r,re,n[re]); kr=med(r,ko,n[ko])
    zs=""; if ((s,1) in z) { zs=sprintf("%.2f× | %.2f×", med(z,s,n[s])/med(z,re,n[re]), med(z,s,n[s])/med(z,ko,n[ko])) } else zs="– | –"
    printf "| %s | %s | %s | %d | %.2f | %.2f | %.2f | %.2f× | %.2f× | %.0f / %.0f / %.0f | %.2f× | %.2f× | %s |\n", sets[si], profs[pi], ph[p], n[s], sw, rw, kw, sw/rw, sw/kw, sr, rr, kr, sr/rr, sr/kr, zs
  }
}
