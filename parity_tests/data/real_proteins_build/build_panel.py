import re,statistics,collections,hashlib
import sys
# input: git show f71d0a6b57c19e3a8954d8557f065c0fe1f46142:examples/QUERY.fasta  (github soedinglab/MMseqs2)
src=sys.argv[1] if len(sys.argv)>1 else 'QUERY.fasta'
recs=[]
for l in open(src):
    l=l.rstrip('\n')
    if l.startswith('>'): recs.append([l[1:],''])
    else: recs[-1][1]+=l.strip()
ALLOWED=set('ACDEFGHIKLMNPQRSTVWYXBZUO')
kms=[];out=[];seen=set();ids=set();rej=collections.Counter()
for h,s in recs:
    db,acc,name=h.split(' ')[0].split('|')
    s=s.upper()
    if not (50<=len(s)<=1000): rej['length']+=1; continue
    if '(Fragment)' in h: rej['fragment']+=1; continue
    if set(s)-ALLOWED: rej['alphabet']+=1; continue
    if s in seen: rej['dup_seq']+=1; continue
    if acc in ids: rej['dup_id']+=1; continue
    km=set(s[i:i+5] for i in range(len(s)-4))
    if any(len(km&k2)/min(len(km),len(k2))>=0.5 for k2 in kms): rej['near_dup_5mer>=0.5']+=1; continue
    if len(out)>=400: rej['cap']+=1; continue
    seen.add(s); ids.add(acc); kms.append(km)
    desc=h.split(' ',1)[1]
    prot=desc.split(' OS=')[0]
    os_=re.search(r'OS=(.*?) (?:OX=|GN=|PE=)',desc).group(1)
    out.append((acc,db,name,prot,os_,s))
with open('proteins.fasta','w') as f:
    for acc,db,name,prot,os_,s in out:
        f.write('>%s\n'%acc)
        for i in range(0,len(s),60): f.write(s[i:i+60]+'\n')
with open('manifest.tsv','w') as f:
    f.write('accession\tdb\tentry_name\tlength\tprotein_name\torganism\n')
    for acc,db,name,prot,os_,s in out:
        f.write('\t'.join([acc,db,name,str(len(s)),prot,os_])+'\n')
L=[len(o[5]) for o in out]
print('n',len(out),'rej',dict(rej))
print('min/median/max',min(L),statistics.median(L),max(L),'mean',round(statistics.mean(L),1))
bins=[50,100,200,300,400,500,600,800,1001]
for a,b in zip(bins,bins[1:]): print(f'{a}-{b-1}',sum(a<=x<b for x in L))
print('sp/tr',collections.Counter(o[1] for o in out))
orgs=set(o[4] for o in out); print('organisms',len(orgs))
species=set(' '.join(o[4].split()[:2]) for o in out); print('species(genus+epithet)',len(species))
genus=set(o[4].split()[0] for o in out); print('genera',len(genus))
names=collections.Counter(o[3] for o in out)
print('distinct protein names',len(names)); print(names.most_common(12))
print('X-containing',sum('X' in o[5] for o in out), 'total X',sum(o[5].count('X') for o in out))
