#!/usr/bin/env bash
# Reads the GitHub token from Secrets Manager with the instance role and writes it as a root-only
# Nix config line (`access-tokens = github.com=<token>`) that nix.conf `!include`s.
#
# Usage: fetch-github-token.sh --secret-id ARN --region REGION [--output FILE]
#
# Needs only bash, coreutils and `aws` (credentials come from the instance role via IMDSv2).
# Env: DEVSERVER_TOKEN_ATTEMPTS (default 5) and DEVSERVER_TOKEN_BACKOFF_SECONDS (default 2,
# doubled after every failed attempt).
#
# Every AWS failure is retried: at first boot the role, its policy and the secret version are
# created in parallel with the machine, so AccessDenied/ResourceNotFound can be transient.
# On failure an existing token file from an earlier run is kept (a still-valid token beats none);
# no temporary file is left behind.
#
# The token lives only in a non-exported shell variable and is written with the `printf` builtin:
# it is never on a command line, in a child's environment, or on stdout/stderr.
set -euo pipefail

readonly prog=fetch-github-token
output=/run/devserver/nix-access-tokens.conf
secret_id=
region=

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

while (($# > 0)); do
	case $1 in
	--secret-id)
		secret_id=${2-}
		shift 2 || die "--secret-id needs a value"
		;;
	--region)
		region=${2-}
		shift 2 || die "--region needs a value"
		;;
	--output)
		output=${2-}
		shift 2 || die "--output needs a value"
		;;
	-h | --help)
		printf 'usage: %s --secret-id ARN --region REGION [--output FILE]\n' "$prog"
		exit 0
		;;
	*) die "unknown argument '$1' (usage: $prog --secret-id ARN --region REGION [--output FILE])" ;;
	esac
done
[[ -n $secret_id ]] || die "--secret-id is required"
[[ -n $region ]] || die "--region is required"
[[ -n $output && $output != */ ]] || die "--output must name a file, got '$output'"

attempts=${DEVSERVER_TOKEN_ATTEMPTS:-5}
delay=${DEVSERVER_TOKEN_BACKOFF_SECONDS:-2}
[[ $attempts =~ ^[1-9][0-9]*$ ]] || die "DEVSERVER_TOKEN_ATTEMPTS must be a positive integer, got '$attempts'"
[[ $delay =~ ^[0-9]+$ ]] || die "DEVSERVER_TOKEN_BACKOFF_SECONDS must be a non-negative integer, got '$delay'"

# Temporaries and the token file are owner-only. The directory itself stays traversable (0755):
# a non-root nix client that cannot stat an `!include`d file drops its whole nix.conf.
umask 077
dir=$(dirname -- "$output")
[[ -d $dir ]] || install -d -m 0755 -- "$dir"

# Both temporaries live next to the output so the final `mv` is an atomic rename on one filesystem.
errfile=
tmpfile=
cleanup() {
	rm -f -- "$errfile" "$tmpfile"
}
trap cleanup EXIT
errfile=$(mktemp -- "$dir/.$prog.err.XXXXXX")

# Turns the AWS CLI's stderr into "ErrorClass: message" on one line; the secret value is never in it.
# Pure bash on purpose: the boot unit's PATH has only coreutils and aws (no grep).
describe_error() {
	local line='' first='' class='' message=''
	while IFS= read -r line || [[ -n $line ]]; do
		[[ -z $first && $line =~ [^[:space:]] ]] && first=$line
		if [[ $line =~ An\ error\ occurred\ \(([^\)]+)\)[^:]*:\ ?(.*)$ ]]; then
			class=${BASH_REMATCH[1]}
			message=${BASH_REMATCH[2]}
			break
		elif [[ $line == *'Unable to locate credentials'* ]]; then
			class=NoCredentialsError
			message="no instance-role credentials (instance metadata unreachable or no instance profile)"
			break
		elif [[ $line == *'Could not connect to the endpoint URL'* ]]; then
			class=EndpointConnectionError
			message=$line
			break
		fi
	done <"$errfile"
	if [[ -z $class ]]; then
		class=AwsCliError
		message=$first
	fi
	# An XML error body on a JSON API (IAM denials from some endpoints) leaves the CLI with only the
	# HTTP status as class; the real class and message are in the body lines that follow.
	if [[ $class =~ ^[0-9]+$ ]]; then
		local text
		text=$(<"$errfile")
		if [[ $text =~ \<Code\>([^\<]+)\</Code\> ]]; then
			class=${BASH_REMATCH[1]}
		fi
		if [[ $text =~ \<Message\>([^\<]*)\</Message\> ]]; then
			message=${BASH_REMATCH[1]}
		fi
	fi
	printf '%s: %s' "$class" "${message:0:300}"
}

raw=
fetched=false
for ((attempt = 1; attempt <= attempts; attempt++)); do
	# The trailing "." keeps trailing newlines of the secret, which $(...) would silently strip.
	if raw=$(aws secretsmanager get-secret-value --secret-id "$secret_id" --region "$region" \
		--query SecretString --output text 2>"$errfile" && printf .); then
		fetched=true
		break
	fi
	error=$(describe_error)
	printf '%s: attempt %d/%d to read secret %s failed: %s\n' \
		"$prog" "$attempt" "$attempts" "$secret_id" "$error" >&2
	if ((attempt < attempts)); then
		sleep "$delay"
		delay=$((delay * 2))
	fi
done
if [[ $fetched != true ]]; then
	die "cannot read secret $secret_id in $region after $attempts attempts: $error"
fi

# Drop the sentinel and the one newline the CLI's text output appends.
token=${raw%.}
token=${token%$'\n'}
unset raw
# `--output text` prints a null SecretString (a binary-only secret) as "None".
if [[ -z $token || $token == None ]]; then
	die "secret $secret_id has an empty SecretString (expected a GitHub token)"
fi
# Nix splits config values on whitespace and cuts lines at '#': such a token would be mangled.
if [[ $token =~ [[:space:]#] ]]; then
	die "secret $secret_id holds whitespace, a newline or '#'; expected a bare GitHub token (value not shown)"
fi

tmpfile=$(mktemp -- "$dir/.$prog.XXXXXX")
printf 'access-tokens = github.com=%s\n' "$token" >"$tmpfile"
unset token
chmod 0400 -- "$tmpfile"
mv -f -- "$tmpfile" "$output"
tmpfile=
printf '%s: wrote the GitHub token from %s to %s\n' "$prog" "$secret_id" "$output" >&2
